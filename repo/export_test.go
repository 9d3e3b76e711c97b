package repo

import "context"

// The two halves of Lock, for the test in which two writers race: both
// write, then both check.
func WriteLock(r *Repository, ctx context.Context, exclusive bool) (*Held, error) {
	return r.writeLock(ctx, exclusive)
}

func CheckLockConflict(r *Repository, ctx context.Context, exclusive bool) error {
	return r.conflict(ctx, exclusive)
}

package prune

import (
	"context"
	"fmt"
	"time"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// Forgotten is what RemoveSnapshots did.
type Forgotten struct {
	Removed []repo.ID
	// Protected snapshots are under Object Lock retention until the time
	// given; they are left alone, and a later forget removes them.
	Protected map[repo.ID]time.Time
}

// RemoveSnapshots deletes the snapshot files ids, except those still under
// retention (never tried), and notes the removal in the guard's record in
// stateDir so that the next prune does not take it for tampering. The
// caller holds the exclusive lock.
func RemoveSnapshots(ctx context.Context, r *repo.Repository, ids []repo.ID, ret Retention, stateDir string, now time.Time) (*Forgotten, error) {
	out := &Forgotten{Protected: map[repo.ID]time.Time{}}
	var err error
	for _, id := range ids {
		h := remote.Handle{Type: remote.SnapshotFile, Name: id.String()}
		var until time.Time
		until, err = retainedUntil(ctx, ret, h, now)
		if err != nil {
			break
		}
		if !until.IsZero() {
			out.Protected[id] = until
			continue
		}
		if err = r.Backend().Remove(ctx, h); err != nil && !remote.IsNotFound(err) {
			err = fmt.Errorf("remove snapshot %s: %w", id.Str(), err)
			break
		}
		err = nil
		out.Removed = append(out.Removed, id)
	}
	// Record what was removed even when a later removal failed.
	if nerr := NoteForgotten(stateDir, r.Config().ID, out.Removed); nerr != nil && err == nil {
		err = nerr
	}
	return out, err
}

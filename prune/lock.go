package prune

import (
	"context"

	"github.com/escrow-backup/escrow/repo"
)

// Lock takes the repository lock for forget and prune: exclusive when they
// will delete, shared for a dry run, which only reads.
//
// INTEGRATION(locks): this is the single call site. Once repo gains
// LockExclusive(ctx, wait), which waits for backups in progress to release
// their locks, and RemoveStaleLocks(ctx), switch the exclusive branch to
// call r.RemoveStaleLocks(ctx) and then r.LockExclusive(ctx, wait).
func Lock(ctx context.Context, r *repo.Repository, exclusive bool) (*repo.Held, error) {
	return r.Lock(ctx, exclusive)
}

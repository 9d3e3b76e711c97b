package prune

import (
	"context"
	"log/slog"
	"time"

	"github.com/escrow-backup/escrow/repo"
)

// DefaultLockWait is how long forget and prune wait for backups in progress
// to give way: longer than a lock takes to go stale (30 minutes), so an
// agent killed on a host that vanished can delay them but never stop them.
const DefaultLockWait = 35 * time.Minute

// Lock takes the repository lock for forget and prune: exclusive when they
// will delete, shared for a dry run, which only reads. Before the exclusive
// lock it removes the lock files that no longer count (the owner may
// delete; the hosts never do), then waits up to wait for the backups and
// agents that hold shared locks to release them (see docs/design.md, Locks).
func Lock(ctx context.Context, r *repo.Repository, exclusive bool, wait time.Duration, log *slog.Logger) (*repo.Held, error) {
	if !exclusive {
		return r.Lock(ctx, false)
	}
	switch n, err := r.RemoveStaleLocks(ctx); {
	case err != nil:
		// Not fatal: a lock file that still counts stops LockExclusive
		// with its own message.
		log.Warn("could not remove stale lock files", "err", err)
	case n > 0:
		log.Info("removed lock files that no longer count", "count", n)
	}
	return r.LockExclusive(ctx, wait)
}

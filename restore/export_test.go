package restore

import (
	"context"

	"github.com/escrow-backup/escrow/repo"
)

// RunInBatches is Run with batches of at most entries entries and blobs
// blobs; it also returns how many ranged reads of packs the restore made.
func RunInBatches(ctx context.Context, r *repo.Repository, sn *repo.Snapshot, opts Options, entries, blobs int) (*Result, int64, error) {
	return run(ctx, r, sn, opts, batchLimits{entries: entries, blobs: blobs})
}

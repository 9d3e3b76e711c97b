package restore

import (
	"context"

	"github.com/escrow-backup/escrow/repo"
)

// RunInBatches is Run with batches of at most entries entries and blobs
// blobs; it also returns how many packs the restore read.
func RunInBatches(ctx context.Context, r *repo.Repository, sn *repo.Snapshot, opts Options, entries, blobs int) (*Result, int64, error) {
	res, n, err := run(ctx, r, sn, opts, batchLimits{entries: entries, blobs: blobs, part: restorePart})
	return res, n.packs, err
}

// RunInParts is Run with ranged reads of packs of at most part bytes (or
// one blob); it also returns how many packs it read and in how many parts.
func RunInParts(ctx context.Context, r *repo.Repository, sn *repo.Snapshot, opts Options, part int64) (*Result, int64, int64, error) {
	res, n, err := run(ctx, r, sn, opts, batchLimits{entries: batchEntries, blobs: batchBlobs, part: part})
	return res, n.packs, n.parts, err
}

package prune

import (
	"context"
	"fmt"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// Retention reads until when a stored object is under Object Lock
// retention (the S3 backend has it; other stores have no retention).
type Retention interface {
	RetainUntil(ctx context.Context, h remote.Handle) (until time.Time, mode string, err error)
}

// RetentionOf returns be's retention reader, looking through the retry and
// rate-limit wrappers, or nil when the store has none.
func RetentionOf(be remote.Backend) Retention {
	r, _ := remote.Find[Retention](be)
	return r
}

// retainedUntil returns until when h must be kept, or the zero time when it
// may be deleted now.
func retainedUntil(ctx context.Context, ret Retention, h remote.Handle, now time.Time) (time.Time, error) {
	if ret == nil {
		return time.Time{}, nil
	}
	until, _, err := ret.RetainUntil(ctx, h)
	if err != nil {
		return time.Time{}, fmt.Errorf("before deleting %s: %w", h, err)
	}
	if until.After(now) {
		return until, nil
	}
	return time.Time{}, nil
}

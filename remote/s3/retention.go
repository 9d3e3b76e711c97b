package s3

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/remote"
)

// RetainUntil returns until when the current version of h is under Object
// Lock retention and in which mode ("GOVERNANCE" or "COMPLIANCE"). An object
// without retention, or a bucket without Object Lock, gives the zero time
// and an empty mode. Owner-side maintenance calls it before deleting
// anything, so that it never tries to delete a version the store must keep.
func (b *Backend) RetainUntil(ctx context.Context, h remote.Handle) (time.Time, string, error) {
	key, err := b.key(h)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("retention of %s: %w", h, err)
	}
	mode, until, err := b.client.GetObjectRetention(ctx, b.cfg.Bucket, key, "")
	if err != nil {
		er := minio.ToErrorResponse(err)
		switch {
		case ctx.Err() != nil:
		case er.Code == "NoSuchObjectLockConfiguration", er.Code == "ObjectLockConfigurationNotFoundError",
			// AWS answers a bucket without Object Lock with InvalidRequest.
			er.Code == "InvalidRequest" && er.StatusCode == http.StatusBadRequest:
			return time.Time{}, "", nil
		case er.Code == minio.AccessDenied || er.StatusCode == http.StatusForbidden:
			return time.Time{}, "", fmt.Errorf("read the retention of %s: %w: access denied for access key ID %q (grant s3:GetObjectRetention on %s, or use the owner's credentials)",
				h, remote.ErrPermanent, b.cfg.KeyID, b.cfg.Bucket)
		}
		return time.Time{}, "", b.classify(ctx, "stat", h.String(), err)
	}
	if until == nil {
		return time.Time{}, "", nil
	}
	m := ""
	if mode != nil {
		m = string(*mode)
	}
	return *until, m, nil
}

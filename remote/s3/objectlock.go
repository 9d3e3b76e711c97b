package s3

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/remote"
)

// Object Lock (WORM) keeps every version of every object for a retention
// period, whoever asks to delete it. Escrow writes each object once and
// never modifies it, so a bucket with versioning and a default retention
// protects the whole repository from credentials that can only put, get and
// list. Create sets this up for a new bucket (WithObjectLock); doctor
// proves it from the host.

// Retention modes, as S3 names them.
const (
	// Compliance: no one, not even the account's root, can shorten or
	// remove the retention of a version or delete it before it ends.
	Compliance = "COMPLIANCE"
	// Governance: credentials with s3:BypassGovernanceRetention can.
	Governance = "GOVERNANCE"
)

// Retention is a bucket's Object Lock default retention: each new version
// is kept Days days in Mode.
type Retention struct {
	Mode string `json:"mode"` // Compliance or Governance
	Days uint   `json:"days"`
}

func (r Retention) String() string {
	return fmt.Sprintf("%d days in %s mode", r.Days, strings.ToLower(r.Mode))
}

// ParseRetention reads a retention period ("30d", "1y") and a mode
// ("compliance" or "governance", any case).
func ParseRetention(period, mode string) (Retention, error) {
	var r Retention
	switch strings.ToUpper(mode) {
	case Compliance, Governance:
		r.Mode = strings.ToUpper(mode)
	default:
		return r, fmt.Errorf("retention mode %q: use compliance or governance", mode)
	}
	unit := 1
	num := period
	switch {
	case strings.HasSuffix(period, "d"):
		num = strings.TrimSuffix(period, "d")
	case strings.HasSuffix(period, "y"):
		num, unit = strings.TrimSuffix(period, "y"), 365
	default:
		return r, fmt.Errorf("retention %q: give days or years, e.g. 30d or 1y", period)
	}
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || n == 0 || n*uint64(unit) > 36500 {
		return r, fmt.Errorf("retention %q: give a whole number of days or years between 1d and 100y, e.g. 30d", period)
	}
	r.Days = uint(n) * uint(unit)
	return r, nil
}

// ErrNoObjectLock marks a bucket that exists without the Object Lock
// (or the default retention) that was asked for.
var ErrNoObjectLock = errors.New("the bucket has no Object Lock")

// WithObjectLock makes Create create the bucket with Object Lock (which
// turns versioning on) and default retention r. For a bucket that already
// exists, Create checks that versioning and Object Lock are on, and sets
// the default retention only where the bucket has none: it never changes a
// retention someone chose before.
func WithObjectLock(r Retention) Option {
	return func(o *options) { o.lock = &r }
}

// Client returns the minio-go client with b's credentials, for the bucket
// settings and probes outside the repository layout (escrow doctor). Those
// calls do not go through classify: callers branch on the S3 error codes.
func (b *Backend) Client() *minio.Client { return b.client }

// Bucket returns the bucket's name.
func (b *Backend) Bucket() string { return b.cfg.Bucket }

// Prefix returns the repository's folder in the bucket ("" for its root).
func (b *Backend) Prefix() string { return b.cfg.Prefix }

// ReadObjectLock reads a bucket's Object Lock configuration: whether it is
// on, and its default retention (nil when there is none). A bucket without
// Object Lock is (false, nil, nil). Errors are minio-go's, unclassified.
func ReadObjectLock(ctx context.Context, c *minio.Client, bucket string) (bool, *Retention, error) {
	enabled, mode, validity, unit, err := c.GetObjectLockConfig(ctx, bucket)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "ObjectLockConfigurationNotFoundError" {
			return false, nil, nil
		}
		return false, nil, err
	}
	if enabled != "Enabled" {
		return false, nil, nil
	}
	if mode == nil || validity == nil || *validity == 0 {
		return true, nil, nil
	}
	r := &Retention{Mode: string(*mode), Days: *validity}
	if unit != nil && *unit == minio.Years {
		r.Days *= 365
	}
	return true, r, nil
}

// makeLockedBucket creates the bucket with Object Lock, which S3 turns
// versioning on for.
func (b *Backend) makeLockedBucket(ctx context.Context) error {
	err := b.client.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.cfg.Region, ObjectLocking: true})
	if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
		return b.classify(ctx, "create", b.cfg.Location(), err)
	}
	return nil
}

// checkLocked verifies that the bucket has versioning and Object Lock on,
// and returns its default retention (nil: none).
func (b *Backend) checkLocked(ctx context.Context) (*Retention, error) {
	loc := b.cfg.Location()
	v, err := b.client.GetBucketVersioning(ctx, b.cfg.Bucket)
	if err != nil {
		return nil, b.classify(ctx, "read the versioning of", loc, err)
	}
	on, r, err := ReadObjectLock(ctx, b.client, b.cfg.Bucket)
	if err != nil {
		return nil, b.classify(ctx, "read the Object Lock configuration of", loc, err)
	}
	if !on || !v.Enabled() {
		what := "Object Lock"
		if !v.Enabled() {
			what = "versioning and Object Lock"
		}
		return nil, fmt.Errorf("create %s: %w: %w: bucket %s exists without %s. Most stores (MinIO, Backblaze B2, Wasabi) can turn Object Lock on only when a bucket is created: "+
			"give a bucket name that does not exist yet, and escrow init --object-lock creates it (on AWS S3 the owner can also enable Object Lock on this versioned bucket in the console). Nothing was changed",
			loc, remote.ErrPermanent, ErrNoObjectLock, b.cfg.Bucket, what)
	}
	return r, nil
}

// setRetention sets the default retention of a bucket that has none, or
// checks that the one it has is the one asked for.
func (b *Backend) setRetention(ctx context.Context, have *Retention) error {
	want := *b.lock
	if have != nil {
		if *have == want {
			return nil
		}
		return fmt.Errorf("create %s: %w: %w: bucket %s already keeps new versions %s, not %s as asked. Run init again with --retention %dd --mode %s to keep that, or change the bucket's default retention with owner credentials in the store's console first. Nothing was changed",
			b.cfg.Location(), remote.ErrPermanent, ErrNoObjectLock, b.cfg.Bucket, have, want, have.Days, strings.ToLower(have.Mode))
	}
	mode := minio.RetentionMode(want.Mode)
	days := want.Days
	unit := minio.Days
	if err := b.client.SetObjectLockConfig(ctx, b.cfg.Bucket, &mode, &days, &unit); err != nil {
		return b.classify(ctx, "set the default retention of", b.cfg.Location(), err)
	}
	return nil
}

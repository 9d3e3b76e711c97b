package s3

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
)

// RetainUntil reads an object's retention, reports none on a bucket without
// Object Lock and on an object without retention, is reachable through the
// retry wrapper, and List reports when each object was stored.
func TestRetainUntil(t *testing.T) {
	ctx := context.Background()
	srv := testenv.MinIO(t)
	if srv.External {
		t.Skip("retained test objects could not be removed from an external server")
	}
	plain := minioConfig(t, "p")
	locked := plain
	locked.Bucket = "escrow-lock-" + randomPrefix()
	root := srv.Client(t)
	if err := root.MakeBucket(ctx, locked.Bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	h := remote.Handle{Type: remote.PackFile, Name: "ab12"}
	for _, cfg := range []Config{plain, locked} {
		b, err := Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		before := time.Now().Add(-time.Minute)
		if err := b.Save(ctx, h, []byte("pack")); err != nil {
			t.Fatal(err)
		}
		until, mode, err := b.RetainUntil(ctx, h)
		if err != nil || !until.IsZero() || mode != "" {
			t.Fatalf("%s: retention of an object without any: %v %q %v", cfg.Bucket, until, mode, err)
		}
		err = b.List(ctx, remote.PackFile, func(fi remote.FileInfo) error {
			if fi.ModTime.Before(before) || fi.ModTime.After(time.Now().Add(time.Minute)) {
				t.Errorf("listed %s stored at %s", fi.Name, fi.ModTime)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	b, err := Open(ctx, locked)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	gov := minio.Governance
	if err := root.PutObjectRetention(ctx, locked.Bucket, "p/data/ab/ab12", minio.PutObjectRetentionOptions{Mode: &gov, RetainUntilDate: &want}); err != nil {
		t.Fatal(err)
	}
	type retention interface {
		RetainUntil(context.Context, remote.Handle) (time.Time, string, error)
	}
	wrapped := remote.WithRetry(b, remote.RetryOptions{MaxElapsed: time.Second})
	ret, ok := remote.Find[retention](wrapped)
	if !ok {
		t.Fatal("RetainUntil not found through the retry wrapper")
	}
	until, mode, err := ret.RetainUntil(ctx, h)
	if err != nil || !until.Equal(want) || mode != "GOVERNANCE" {
		t.Fatalf("retention: %v %q %v, want %v GOVERNANCE", until, mode, err, want)
	}
	if _, _, err := b.RetainUntil(ctx, remote.Handle{Type: remote.PackFile, Name: "cd34"}); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("retention of a missing object: %v", err)
	}
}

// Credentials that may not read retention get a permanent error that names
// the permission, never the secret; prune stops on it before deleting.
func TestRetainUntilAccessDenied(t *testing.T) {
	b, err := connect(fakeS3(t, 403, "AccessDenied"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, _, err = b.RetainUntil(context.Background(), remote.Handle{Type: remote.PackFile, Name: "abcdef"})
	if !errors.Is(err, remote.ErrPermanent) || !strings.Contains(err.Error(), "s3:GetObjectRetention") ||
		!strings.Contains(err.Error(), "AKIDEXAMPLE") || strings.Contains(err.Error(), "SECRETEXAMPLE") {
		t.Fatalf("got %v", err)
	}
}

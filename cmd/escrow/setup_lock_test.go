//go:build unix

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/doctor"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/s3"
)

// lockPreseed is a preseed for a repository in bucket with Object Lock and
// the given extra lines (object_lock_retention, object_lock_mode).
func lockPreseed(h *setupHost, srv testenv.Server, bucket, site, extra string) string {
	return h.preseed(fmt.Sprintf("repository: %s\ns3:\n  access_key_id: %s\n  secret_access_key: %s\nobject_lock: true\n%ssources:\n  - path: %s\nkit:\n  file: %s\n",
		srv.URL(bucket, "site"), srv.AccessKey, srv.SecretKey, extra, site, filepath.Join(h.root, "kit.txt")))
}

// bucketLock reads a bucket's versioning and default retention as root.
func bucketLock(t *testing.T, srv testenv.Server, bucket string) (bool, *s3.Retention) {
	t.Helper()
	ctx := context.Background()
	c := srv.Client(t)
	v, err := c.GetBucketVersioning(ctx, bucket)
	if err != nil {
		t.Fatalf("versioning of %s: %v", bucket, err)
	}
	on, ret, err := s3.ReadObjectLock(ctx, c, bucket)
	if err != nil {
		t.Fatalf("Object Lock of %s: %v", bucket, err)
	}
	return on && v.Enabled(), ret
}

// TestSetupObjectLock: setup makes the bucket it is given locked, accepts
// one locked as asked, refuses (exit 6, nothing changed in the store) one
// without Object Lock or with another retention, and ends with the
// doctor's verdict, printed and saved.
func TestSetupObjectLock(t *testing.T) {
	srv := testenv.MinIO(t)
	c := freshCLI(t)

	t.Run("creates the bucket locked, 30 days governance by default", func(t *testing.T) {
		h := newSetupHost(t)
		site := h.site("shop", map[string]string{"index.php": "<?php echo 'shop';"})
		bucket := newBucketName(t)
		pre := lockPreseed(h, srv, bucket, site, "")
		out := c.ok(h.setupArgs("--preseed", pre, "--yes")...)
		if !strings.Contains(out, "Object Lock: bucket "+bucket+" keeps every version 30 days in governance mode.") {
			t.Errorf("setup output does not say how the bucket keeps versions:\n%s", out)
		}
		if on, ret := bucketLock(t, srv, bucket); !on || ret == nil || *ret != (s3.Retention{Mode: s3.Governance, Days: 30}) {
			t.Fatalf("bucket %s: locked %v, retention %+v; want 30 days governance", bucket, on, ret)
		}
		// The verdict, with root's credential: not tamper-proof, said
		// plainly, and saved for escrow status.
		if !strings.Contains(out, "NOT tamper-proof: ") || !strings.Contains(out, "escrow doctor --config "+h.cfg) {
			t.Errorf("setup output lacks the doctor's verdict:\n%s", out)
		}
		saved, err := doctor.Load(h.state)
		if err != nil || saved.TamperProof || !saved.ObjectLock || saved.Retention == nil || saved.Retention.Days != 30 {
			t.Fatalf("saved verdict: %+v %v", saved, err)
		}
		// Run again: the bucket is as asked, setup goes through.
		if out := c.ok(h.setupArgs("--preseed", pre, "--yes")...); !strings.Contains(out, "Opened the existing repository") {
			t.Errorf("second run:\n%s", out)
		}

		// Another retention for the same bucket: refused, nothing changed.
		h2 := newSetupHost(t)
		r := c.run(nil, h2.setupArgs("--preseed", lockPreseed(h2, srv, bucket, site, "object_lock_retention: 7d\nobject_lock_mode: compliance\n"), "--yes")...)
		if r.code != exitSetupLock || !strings.Contains(r.stderr, "bucket "+bucket+" keeps new versions 30 days in governance mode, not 7 days in compliance mode") ||
			!strings.Contains(r.stderr, "object_lock_retention: 30d and object_lock_mode: governance") || !strings.Contains(r.stderr, "--retention 30d --mode governance") {
			t.Fatalf("setup with another retention: exit %d\n%s", r.code, r.stderr)
		}
		if _, err := os.Stat(h2.cfg); err == nil {
			t.Error("a refused setup wrote the configuration")
		}
		if _, ret := bucketLock(t, srv, bucket); *ret != (s3.Retention{Mode: s3.Governance, Days: 30}) {
			t.Errorf("a refused setup changed the retention to %+v", ret)
		}
	})

	t.Run("flags", func(t *testing.T) {
		h := newSetupHost(t)
		site := h.site("shop", map[string]string{"index.php": "<?php"})
		bucket := newBucketName(t)
		fc := freshCLI(t, srv.Env()...)
		fc.ok(h.setupArgs("--yes", "--repo", srv.URL(bucket, "site"), "--source", site, "--kit-out", filepath.Join(h.root, "kit.txt"),
			"--object-lock", "--retention", "1d", "--mode", "compliance", "--no-backup")...)
		if on, ret := bucketLock(t, srv, bucket); !on || ret == nil || *ret != (s3.Retention{Mode: s3.Compliance, Days: 1}) {
			t.Fatalf("bucket %s: locked %v, retention %+v; want 1 day compliance", bucket, on, ret)
		}
	})

	t.Run("refuses a bucket without Object Lock", func(t *testing.T) {
		h := newSetupHost(t)
		site := h.site("shop", map[string]string{"index.php": "<?php"})
		plain := srv.NewBucket(t)
		r := c.run(nil, h.setupArgs("--preseed", lockPreseed(h, srv, plain, site, ""), "--yes")...)
		if r.code != exitSetupLock || !strings.Contains(r.stderr, "bucket "+plain+" exists without versioning and Object Lock") ||
			!strings.Contains(r.stderr, "give a bucket name that does not exist yet") || !strings.Contains(r.stderr, "object_lock: false") {
			t.Fatalf("setup on a plain bucket: exit %d\n%s", r.code, r.stderr)
		}
		if n := countObjects(t, srv, plain); n != 0 {
			t.Errorf("%d objects written to the plain bucket", n)
		}
		// A bucket locked without a default retention, holding a
		// repository: nothing would protect its new versions.
		bare := srv.NewLockedBucket(t, s3.Governance, 0)
		newCLI(t, srv.URL(bare, "site"), srv.Env()...).ok("init")
		r = c.run(nil, h.setupArgs("--preseed", lockPreseed(h, srv, bare, site, ""), "--yes")...)
		if r.code != exitSetupLock || !strings.Contains(r.stderr, "bucket "+bare+" has Object Lock but no default retention") {
			t.Fatalf("setup on a locked bucket without default retention: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("the host's credential on the owner's locked bucket", func(t *testing.T) {
		bucket := srv.NewLockedBucket(t, s3.Governance, 30)
		pol, err := doctor.Policy(bucket, "site", doctor.HostWriter, doctor.MinIO)
		if err != nil {
			t.Fatal(err)
		}
		host := srv.NewUser(t, "host", pol)
		h := newSetupHost(t)
		site := h.site("shop", map[string]string{"index.php": "<?php"})
		out := c.ok(h.setupArgs("--preseed", lockPreseed(h, host, bucket, site, ""), "--yes")...)
		if !strings.Contains(out, "tamper-proof: versions kept 30 days in governance mode; this host cannot delete or shorten them\n") || strings.Contains(out, "NOT tamper-proof") {
			t.Fatalf("setup with the host's credential does not end tamper-proof:\n%s", out)
		}
		if saved, err := doctor.Load(h.state); err != nil || !saved.TamperProof {
			t.Fatalf("saved verdict: %+v %v", saved, err)
		}
	})

	t.Run("bad answers", func(t *testing.T) {
		h := newSetupHost(t)
		site := h.site("shop", map[string]string{"index.php": "<?php"})
		bucket := newBucketName(t)
		for _, tc := range []struct{ extra, want string }{
			{"object_lock_retention: 30\n", ":6: object_lock_retention: retention \"30\": give days or years"},
			{"object_lock_mode: strict\n", ":6: object_lock_mode: retention mode \"strict\": use compliance or governance"},
		} {
			r := c.run(nil, h.setupArgs("--preseed", lockPreseed(h, srv, bucket, site, tc.extra), "--yes")...)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("preseed with %q: exit %d\n%s", tc.extra, r.code, r.stderr)
			}
		}
		pre := h.preseed(fmt.Sprintf("repository: %s\ns3:\n  access_key_id: %s\n  secret_access_key: %s\nobject_lock_mode: compliance\nsources:\n  - path: %s\nkit:\n  file: %s\n",
			srv.URL(bucket, "site"), srv.AccessKey, srv.SecretKey, site, filepath.Join(h.root, "kit.txt")))
		if r := c.run(nil, h.setupArgs("--preseed", pre, "--yes")...); r.code != exitUsage || !strings.Contains(r.stderr, "go with object_lock: true") {
			t.Errorf("object_lock_mode without object_lock: exit %d\n%s", r.code, r.stderr)
		}
		if r := c.run(nil, h.setupArgs("--yes", "--repo", filepath.Join(h.root, "repo"), "--source", site, "--object-lock")...); r.code != exitUsage || !strings.Contains(r.stderr, "is a directory, which has no Object Lock") {
			t.Errorf("--object-lock for a directory: exit %d\n%s", r.code, r.stderr)
		}
		if ok, _ := srv.Client(t).BucketExists(context.Background(), bucket); ok {
			t.Errorf("bad answers created bucket %s", bucket)
		}
	})
}

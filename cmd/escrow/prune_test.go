package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// The owner's story: backups over time, forget by policy with --prune, and
// the repository stays sound for escrow and restic, the kept snapshot
// restores exactly, and the refusals name what to fix.
func TestForgetPruneCLI(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	c := newCLI(t, srv.URL(bucket, "site"), srv.Env()...)
	c.ok("init")
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 1, 3)
	big := make([]byte, 2<<20)
	for i := 0; i < 3; i++ {
		_, _ = rand.Read(big)
		if err := os.WriteFile(filepath.Join(src, "wp-content/uploads/video.mp4"), big, 0o644); err != nil {
			t.Fatal(err)
		}
		c.ok("backup", src, "--tag", "site")
	}
	want := digest(t, src)

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"forget"}, "no policy given"},
		{[]string{"forget", "--keep-last", "1", "abcd"}, "not both"},
		{[]string{"forget", "--keep-within", "5w"}, "unknown unit"},
		{[]string{"forget", "--group-by", "hostname", "--keep-last", "1"}, "unknown field"},
		{[]string{"prune", "--max-unused", "lots"}, "--max-unused"},
	} {
		r := c.run(nil, tc.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("escrow %v: exit %d, stderr %q; want exit %d and %q", tc.args, r.code, r.stderr, exitUsage, tc.msg)
		}
	}

	var groups []struct {
		Keep   []struct{ ID string } `json:"keep"`
		Remove []struct{ ID string } `json:"remove"`
	}
	if err := json.Unmarshal([]byte(c.ok("forget", "--keep-last", "1", "--dry-run", "--json")), &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || len(groups[0].Keep) != 1 || len(groups[0].Remove) != 2 || len(c.snapshots()) != 3 {
		t.Fatalf("dry run: %+v", groups)
	}
	out := c.ok("prune", "--dry-run")
	if !strings.Contains(out, "dry run: nothing was changed") {
		t.Fatalf("prune --dry-run: %s", out)
	}

	out = c.ok("forget", "--keep-last", "1", "--prune", "--max-unused", "0%")
	for _, s := range []string{"keep 1 snapshots", "remove 2 snapshots", "last snapshot", "removed 2 snapshots", "pruning", "remove:", "done:"} {
		if !strings.Contains(out, s) {
			t.Fatalf("forget --prune output lacks %q:\n%s", s, out)
		}
	}
	t.Logf("forget --prune:\n%s", out)
	if n := len(c.snapshots()); n != 1 {
		t.Fatalf("%d snapshots left", n)
	}
	c.ok("check", "--read-data")
	if out, err := newResticFor(t, c).run("correct horse battery staple", "check", "--read-data"); err != nil {
		t.Fatalf("restic check: %v\n%s", err, out)
	}
	target := t.TempDir()
	c.ok("restore", "latest", "--target", target)
	sameTree(t, want, digest(t, filepath.Join(target, src)))
	if out := c.ok("prune"); !strings.Contains(out, "nothing to remove") {
		t.Fatalf("second prune: %s", out)
	}

	// A snapshot deleted behind the owner's back (here with the store's
	// root credentials) makes prune refuse until --force.
	c.ok("backup", src, "--tag", "site")
	snaps := c.snapshots()
	root := srv.Client(t)
	if err := root.RemoveObject(context.Background(), bucket, "site/snapshots/"+snaps[0].ID, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	r := c.run(nil, "prune")
	if r.code != exitFailure || !strings.Contains(r.stderr, "1 of 1 snapshots ("+snaps[0].ShortID) || !strings.Contains(r.stderr, "escrow snapshots --as-of") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("prune after a snapshot vanished: exit %d\n%s", r.code, r.stderr)
	}
	c.ok("prune", "--force")
	c.ok("check")
}

// On an Object Lock bucket forget shows "protected until" per snapshot and
// removes none of them, and prune deletes nothing retained.
func TestForgetObjectLockCLI(t *testing.T) {
	srv := testenv.MinIO(t)
	if srv.External {
		t.Skip("retained test objects could not be removed from an external server")
	}
	ctx := context.Background()
	root := srv.Client(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	bucket := "escrow-lock-" + hex.EncodeToString(b[:])
	if err := root.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	mode, days, unit := minio.Governance, uint(1), minio.Days
	if err := root.SetObjectLockConfig(ctx, bucket, &mode, &days, &unit); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, srv.URL(bucket, "site"), srv.Env()...)
	c.ok("init")
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 2, 1)
	c.ok("backup", src)
	if err := os.WriteFile(filepath.Join(src, "wp-config.php"), []byte("<?php // changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	c.ok("backup", src)
	out := c.ok("forget", "--keep-last", "1", "--prune")
	if strings.Count(out, "protected until") < 3 || !strings.Contains(out, "removed 0 snapshots") || strings.Contains(out, "pruning") {
		t.Fatalf("forget on a locked bucket:\n%s", out)
	}
	if n := len(c.snapshots()); n != 2 {
		t.Fatalf("%d snapshots left, want both (retained)", n)
	}
	out = c.ok("prune")
	if !strings.Contains(out, "nothing to remove") {
		t.Fatalf("prune on a locked bucket:\n%s", out)
	}
	c.ok("check", "--read-data")
}

//go:build unix

package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/attack"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

func TestParseAsOf(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-20T10:00:00Z", time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)},
		{"2026-11-20T10:00:00+02:00", time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)},
		{"2026-11-20T10:00:00.25Z", time.Date(2026, 11, 20, 10, 0, 0, 250e6, time.UTC)},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"2026-11-20 10:30", time.Date(2026, 11, 20, 10, 30, 0, 0, time.UTC)},
		{"2 hours ago", now.Add(-2 * time.Hour)},
		{"1 hour ago", now.Add(-time.Hour)},
		{"30m ago", now.Add(-30 * time.Minute)},
		{"30 min ago", now.Add(-30 * time.Minute)},
		{"3 days ago", now.Add(-72 * time.Hour)},
		{"2 Weeks Ago", now.Add(-14 * 24 * time.Hour)},
		{"1h30m ago", now.Add(-90 * time.Minute)},
		{"  45s ago ", now.Add(-45 * time.Second)},
	} {
		got, err := parseAsOf(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("parseAsOf(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "needs a time"},
		{"yesterday", "not a time"},
		{"2 fortnights ago", "not a time"},
		{"-5m ago", "not a time"},
		{"2026-13-01", "not a time"},
		{"in 2 hours", "not a time"},
		{"2027-01-01T00:00:00Z", "in the future"},
		{"999999999999 days ago", "too far back"},
	} {
		if _, err := parseAsOf(tc.in, now); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("parseAsOf(%q): %v, want an error mentioning %q", tc.in, err, tc.msg)
		}
	}
}

// versionedBucket makes a bucket with versioning on the test server.
func versionedBucket(t *testing.T, srv testenv.Server) string {
	t.Helper()
	bucket := srv.NewBucket(t)
	if err := srv.Client(t).EnableVersioning(context.Background(), bucket); err != nil {
		t.Fatalf("enable versioning on %s: %v", bucket, err)
	}
	return bucket
}

// masterKey opens the repository the way the attacker on the host can:
// with the password.
func masterKey(t *testing.T, srv testenv.Server, bucket, prefix string) *repo.Key {
	t.Helper()
	ctx := context.Background()
	cfg, err := s3.ParseURL(srv.URL(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeyID, cfg.Secret = srv.AccessKey, srv.SecretKey
	be, err := s3.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	r, err := repo.Open(ctx, be, "correct horse battery staple", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	return r.Key()
}

func snapshotIDs(t *testing.T, out string) []string {
	t.Helper()
	var list []snapshotJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("snapshots --json: %v\n%s", err, out)
	}
	var ids []string
	for _, sn := range list {
		ids = append(ids, sn.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestAsOfAttack is the escrow's promise end to end: an attacker with the
// password and an S3 credential that may overwrite keys and put delete
// markers does its worst; the owner still reads the state before the
// attack byte for byte, falls back past overwrites in the current view,
// and makes the bucket whole again for restic too.
func TestAsOfAttack(t *testing.T) {
	ctx := context.Background()
	srv := testenv.MinIO(t)
	bucket := versionedBucket(t, srv)
	c := newCLI(t, srv.URL(bucket, "site"), srv.Env()...)
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 7, 3)
	c.ok("init")
	c.ok("backup", src)
	if err := os.WriteFile(filepath.Join(src, "wp-config.php"), []byte("<?php define('DB_NAME','shop2');\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	c.ok("backup", src)
	want := digest(t, src)
	var before []string
	for _, sn := range c.snapshots() {
		before = append(before, sn.ID)
	}
	slices.Sort(before)
	latestAtT := c.snapshots()[1]

	time.Sleep(1100 * time.Millisecond)
	at := time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(1100 * time.Millisecond)
	// A later legitimate backup: not part of the state at T.
	if err := os.WriteFile(filepath.Join(src, "later.txt"), []byte("after T"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("backup", src)

	target := attack.Target{Client: srv.Client(t), Bucket: bucket, Prefix: "site", Key: masterKey(t, srv, bucket, "site")}
	tree, err := repo.ParseID(latestAtT.Tree)
	if err != nil {
		t.Fatal(err)
	}
	mustAttack := func(t *testing.T, what string, res attack.Result, err error) {
		t.Helper()
		if err != nil || len(res.Errors) > 0 || res.DeleteMarkers+res.Overwrites+res.Uploads == 0 {
			t.Fatalf("attack %s: %v %+v", what, err, res)
		}
	}

	t.Run("current view falls back past overwrites", func(t *testing.T) {
		res, err := target.Overwrite(ctx, attack.Garbage, true)
		mustAttack(t, "overwrite with garbage", res, err)
		res, err = target.BogusSnapshots(ctx, 2, tree, []string{src})
		mustAttack(t, "bogus snapshots", res, err)

		r := c.run(nil, "snapshots", "--json")
		if r.code != 0 {
			t.Fatalf("snapshots after an overwrite: exit %d\n%s", r.code, r.stderr)
		}
		t.Logf("escrow snapshots after the overwrite, stderr:\n%s", r.stderr)
		if n := len(snapshotIDs(t, r.stdout)); n != 5 {
			t.Fatalf("current view lists %d snapshots, want the 3 real ones and the 2 bogus", n)
		}
		for _, w := range []string{"someone wrote over it", "object=config", "object=snapshots/", "object=keys/", "bad_version_time=", "used_version="} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("snapshots after an overwrite: no %q in the warnings:\n%s", w, r.stderr)
			}
		}
		// Warned once per object, not once per read.
		if n := strings.Count(r.stderr, "object=config"); n != 1 {
			t.Errorf("config warned about %d times", n)
		}
		// check still reads everything, and reports what was written over.
		r = c.run(nil, "check")
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "was written over at") || !strings.Contains(r.stdout+r.stderr, "escrow recover --as-of TIME") {
			t.Fatalf("check after an overwrite: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		dir := t.TempDir()
		r = c.run(nil, "restore", latestAtT.ID, "--target", dir, "--verify")
		if r.code != 0 {
			t.Fatalf("restore after an overwrite: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		if !strings.Contains(r.stderr, "object=data/") || !strings.Contains(r.stderr, "object=index/") {
			t.Errorf("restore did not warn about the overwritten packs and index:\n%s", r.stderr)
		}
		sameTree(t, want, digest(t, filepath.Join(dir, src)))
	})

	t.Run("as of a time before every attack", func(t *testing.T) {
		res, err := target.Everything(ctx, 2, tree, []string{src})
		mustAttack(t, "everything", res, err)
		if res.DeleteMarkers == 0 || res.Overwrites == 0 || res.Uploads != 2 {
			t.Fatalf("the attack did not do everything: %+v", res)
		}
		if r := c.run(nil, "restore", "latest", "--target", t.TempDir()); r.code == 0 {
			t.Fatal("the current view restored after every pack was marked deleted; the attack did nothing")
		}

		if got := snapshotIDs(t, c.ok("snapshots", "--as-of", at, "--json")); !slices.Equal(got, before) {
			t.Fatalf("snapshots --as-of: %v, want %v", got, before)
		}
		dir := t.TempDir()
		c.ok("restore", "latest", "--as-of", at, "--target", dir, "--verify")
		sameTree(t, want, digest(t, filepath.Join(dir, src)))
		c.ok("check", "--as-of", at, "--read-data")
		if out := c.ok("ls", "latest", "--as-of", at, src); strings.Contains(out, "later.txt") {
			t.Fatalf("ls --as-of shows a file backed up after the time:\n%s", out)
		}
		if out := c.ok("dump", "latest", "--as-of", at, filepath.Join(src, "wp-config.php")); !strings.Contains(out, "shop2") {
			t.Fatalf("dump --as-of: %q", out)
		}
		if out := c.ok("key", "list", "--as-of", at); !strings.Contains(out, "*") {
			t.Fatalf("key list --as-of:\n%s", out)
		}
		// The kit made from the past names the repository's real address.
		if out := c.ok("kit", "--as-of", at); !strings.Contains(out, srv.URL(bucket, "site")+"\n") {
			t.Fatalf("kit --as-of does not name the repository:\n%s", out)
		}
		// Writes refuse, saying what to do instead.
		r := c.run(nil, "backup", "--as-of", at, src)
		if r.code == 0 || !strings.Contains(r.stderr, "--as-of is read-only") || !strings.Contains(r.stderr, "escrow recover --as-of") {
			t.Fatalf("backup --as-of: exit %d\n%s", r.code, r.stderr)
		}
		if r := c.run(nil, "init", "--as-of", at); r.code != exitUsage || !strings.Contains(r.stderr, "--as-of is read-only") {
			t.Fatalf("init --as-of: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("recover", func(t *testing.T) {
		out := c.ok("recover", "--as-of", at, "--dry-run")
		if !strings.Contains(out, "dry run: nothing was changed") || !strings.Contains(out, "(2 snapshots then)") {
			t.Fatalf("recover --dry-run:\n%s", out)
		}
		if r := c.run(nil, "snapshots"); r.code == 0 && !strings.Contains(r.stderr, "someone wrote over it") {
			t.Fatalf("a dry run changed the bucket:\n%s", r.stdout)
		}
		out = c.ok("recover", "--as-of", at)
		t.Logf("escrow recover --as-of %s:\n%s", at, out)
		if !strings.Contains(out, "recovered:") {
			t.Fatalf("recover:\n%s", out)
		}
		// Idempotent.
		if out := c.ok("recover", "--as-of", at); !strings.Contains(out, "recovered: 0 files restored, 0 hidden") {
			t.Fatalf("second recover changed something:\n%s", out)
		}
		r := c.run(nil, "snapshots", "--json")
		if r.code != 0 || strings.Contains(r.stderr, "wrote over") {
			t.Fatalf("snapshots after recover: exit %d\n%s", r.code, r.stderr)
		}
		if got := snapshotIDs(t, r.stdout); !slices.Equal(got, before) {
			t.Fatalf("snapshots after recover: %v, want %v", got, before)
		}

		// restic sees the state at T.
		rs := newResticFor(t, c)
		const pw = "correct horse battery staple"
		if out, err := rs.run(pw, "check"); err != nil {
			t.Fatalf("restic check after recover: %v\n%s", err, out)
		}
		out, err := rs.run(pw, "snapshots", "--json")
		if err != nil {
			t.Fatalf("restic snapshots: %v\n%s", err, out)
		}
		if got := snapshotIDs(t, out); !slices.Equal(got, before) {
			t.Fatalf("restic snapshots after recover: %v, want %v", got, before)
		}
		dir := t.TempDir()
		if out, err := rs.run(pw, "restore", latestAtT.ID, "--target", dir); err != nil {
			t.Fatalf("restic restore: %v\n%s", err, out)
		}
		sameTree(t, want, digest(t, filepath.Join(dir, src)))
	})
}

func TestAsOfRefusals(t *testing.T) {
	local := newCLI(t, filepath.Join(t.TempDir(), "repo"))
	local.ok("init")
	if r := local.run(nil, "snapshots", "--as-of", "1 hour ago"); r.code != exitUsage || !strings.Contains(r.stderr, "--as-of needs a bucket with versioning") {
		t.Fatalf("--as-of on a local repository: exit %d\n%s", r.code, r.stderr)
	}
	if r := local.run(nil, "snapshots", "--as-of", "last tuesday"); r.code != exitUsage || !strings.Contains(r.stderr, "not a time") {
		t.Fatalf("--as-of with a bad time: exit %d\n%s", r.code, r.stderr)
	}
	if r := local.run(nil, "recover"); r.code != exitUsage || !strings.Contains(r.stderr, "recover needs --as-of TIME") {
		t.Fatalf("recover without --as-of: exit %d\n%s", r.code, r.stderr)
	}
	if r := local.run(nil, "recover", "--as-of", "1 hour ago"); r.code != exitUsage || !strings.Contains(r.stderr, "recover needs an s3: repository") {
		t.Fatalf("recover on a local repository: exit %d\n%s", r.code, r.stderr)
	}

	srv := testenv.MinIO(t)
	plain := newCLI(t, srv.URL(srv.NewBucket(t), "site"), srv.Env()...)
	plain.ok("init")
	for _, args := range [][]string{{"snapshots", "--as-of", "1 hour ago"}, {"recover", "--as-of", "1 hour ago"}} {
		if r := plain.run(nil, args...); r.code == 0 || !strings.Contains(r.stderr, "needs a bucket with versioning") {
			t.Fatalf("%v on a bucket without versioning: exit %d\n%s", args, r.code, r.stderr)
		}
	}

	// The agent writes: it refuses at once.
	as := newAgentSetup(t)
	if r := as.c.run(nil, "agent", "--config", as.cfg, "--as-of", "1 hour ago"); r.code != exitUsage || !strings.Contains(r.stderr, "--as-of is read-only: this command would back up") {
		t.Fatalf("agent --as-of: exit %d\n%s", r.code, r.stderr)
	}

	// A time before the repository existed: nothing to read, and recover
	// refuses to make the bucket empty.
	versioned := newCLI(t, srv.URL(versionedBucket(t, srv), "site"), srv.Env()...)
	versioned.ok("init")
	if r := versioned.run(nil, "snapshots", "--as-of", "1 hour ago"); r.code != exitNoRepository {
		t.Fatalf("snapshots before the repository existed: exit %d\n%s", r.code, r.stderr)
	}
	if r := versioned.run(nil, "recover", "--as-of", "1 hour ago"); r.code == 0 || !strings.Contains(r.stderr, "does not open") {
		t.Fatalf("recover to before the repository existed: exit %d\n%s", r.code, r.stderr)
	}
}

package prune_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/prune"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

func ids(snaps []*repo.Snapshot) []repo.ID {
	out := make([]repo.ID, len(snaps))
	for i, sn := range snaps {
		out[i] = sn.ID
	}
	return out
}

// wantVersions maps the snapshots that stay to their version numbers.
func wantVersions(snaps []*repo.Snapshot, from int) map[repo.ID]int {
	m := map[repo.ID]int{}
	for i := from; i < len(snaps); i++ {
		m[snaps[i].ID] = i + 1
	}
	return m
}

// Forget then prune on MinIO: the repository shrinks, escrow and restic
// both check it clean reading all data, every kept snapshot restores byte
// for byte, the guard does not take prune's own work for tampering, and a
// second run finds nothing to do.
func TestPruneAfterForget(t *testing.T) {
	srv := testenv.MinIO(t)
	s := s3Store(t, srv, srv.NewBucket(t), "site")
	snaps := fixture(t, s, 6)
	ctx := context.Background()
	state := t.TempDir()
	be := s.backend(t, false)
	r := s.open(t, be)

	// A first run records the listing; nothing is unused yet.
	res, err := prune.Run(ctx, r, prune.Options{MaxUnused: 0, StateDir: state, Grace: prune.DefaultGrace})
	if err != nil {
		t.Fatal(err)
	}
	if !res.FirstRun || res.Remove.N != 0 || res.Repack.N != 0 {
		t.Fatalf("first run: %+v", res)
	}
	fi, err := os.Stat(prune.StatePath(state, r.Config().ID))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("listing record: %v, mode %v", err, fi.Mode())
	}

	f, err := prune.RemoveSnapshots(ctx, r, ids(snaps[:3]), prune.RetentionOf(be), state, time.Now())
	if err != nil || len(f.Removed) != 3 || len(f.Protected) != 0 {
		t.Fatalf("forget: %+v, %v", f, err)
	}
	nBefore, before := storedBytes(t, be)

	r = s.open(t, s.backend(t, false))
	dry, err := prune.Run(ctx, r, prune.Options{MaxUnused: 0, StateDir: state, Grace: prune.DefaultGrace, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.Remove.N == 0 || dry.Repack.N == 0 {
		t.Fatalf("dry run plans nothing to remove or repack: %+v", dry)
	}
	if n, size := storedBytes(t, be); n != nBefore || size != before {
		t.Fatal("the dry run changed the store")
	}

	r = s.open(t, s.backend(t, false))
	res, err = prune.Run(ctx, r, prune.Options{MaxUnused: 0, StateDir: state, Grace: prune.DefaultGrace})
	if err != nil {
		t.Fatal(err)
	}
	if res.Remove != dry.Remove || res.Repack != dry.Repack {
		t.Errorf("run did %+v/%+v, dry run planned %+v/%+v", res.Remove, res.Repack, dry.Remove, dry.Repack)
	}
	nAfter, after := storedBytes(t, be)
	t.Logf("packs: %d (%d bytes) before, %d (%d bytes) after; removed %d packs, repacked %d (%d bytes of used blobs copied)",
		nBefore, before, nAfter, after, res.Remove.N, res.Repack.N, res.Repacked.Bytes)
	if after >= before {
		t.Fatalf("the repository did not shrink: %d -> %d bytes", before, after)
	}
	// What is stored now is what was kept plus the new packs holding the
	// repacked blobs (and their headers).
	if added := after - (before - res.Remove.Bytes - res.Repack.Bytes); added < res.Repacked.Bytes || added > res.Repacked.Bytes+res.Repacked.Bytes/10+4096 {
		t.Errorf("new packs hold %d bytes for %d bytes of repacked blobs", added, res.Repacked.Bytes)
	}
	verify(t, s, wantVersions(snaps, 3), true)

	r = s.open(t, s.backend(t, false))
	again, err := prune.Run(ctx, r, prune.Options{MaxUnused: 0, StateDir: state, Grace: prune.DefaultGrace})
	if err != nil {
		t.Fatal(err)
	}
	if again.Remove.N != 0 || again.Repack.N != 0 || again.Orphans.N != 0 {
		t.Fatalf("second run still finds work: %+v", again)
	}
}

// Prune interrupted after the n-th write or delete, at points spread over
// a whole run, leaves a repository that checks clean and restores; a
// re-run completes the work.
func TestPruneInterrupted(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	run := func(t *testing.T, prefix string, at int) (int, store, map[repo.ID]int) {
		s := s3Store(t, srv, bucket, prefix)
		snaps := fixture(t, s, 4)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		be := &cutBackend{Backend: s.backend(t, false), cancel: cancel}
		r := s.open(t, be)
		state := t.TempDir()
		if _, err := prune.RemoveSnapshots(ctx, r, ids(snaps[:2]), nil, state, time.Now()); err != nil {
			t.Fatal(err)
		}
		be.n, be.at = 0, at // count prune's operations only
		// The packs are minutes old: only the record of what the cut run
		// meant to delete lets the re-run delete them within the grace.
		opts := prune.Options{MaxUnused: 0, StateDir: state, Grace: prune.DefaultGrace}
		_, err := prune.Run(ctx, r, opts)
		want := wantVersions(snaps, 2)
		if at == 0 {
			if err != nil {
				t.Fatal(err)
			}
			return be.n, s, want
		}
		if err == nil {
			// The cut came when the last requests were already on their way.
			t.Logf("prune cut after operation %d of %d finished anyway", at, be.n)
		}
		verifyOrphans(t, s, want, false, true)
		r = s.open(t, s.backend(t, false))
		if _, err := prune.Run(context.Background(), r, opts); err != nil {
			t.Fatalf("re-run after a cut at %d: %v", at, err)
		}
		// A pack whose upload the cut interrupted may have reached the
		// store unheard: nobody indexed it, and the grace period keeps it
		// until it cannot belong to a backup in progress.
		verifyOrphans(t, s, want, false, true)
		later := opts
		later.Now = func() time.Time { return time.Now().Add(prune.DefaultGrace + time.Minute) }
		r = s.open(t, s.backend(t, false))
		res, err := prune.Run(context.Background(), r, later)
		if err != nil {
			t.Fatal(err)
		}
		if res.Remove.N != 0 || res.Repack.N != 0 || res.Young.N != 0 {
			t.Fatalf("after a cut at %d and a re-run, work is left: %+v", at, res)
		}
		if res.Orphans.N > 0 {
			t.Logf("cut at %d left %d unheard uploads, removed after the grace period", at, res.Orphans.N)
		}
		verify(t, s, want, false)
		return be.n, s, want
	}
	total, s, want := run(t, "ref", 0)
	verify(t, s, want, true)
	t.Logf("an uninterrupted prune makes %d writes and deletes", total)
	if total < 6 {
		t.Fatalf("only %d operations: the fixture tests too little", total)
	}
	points := map[int]bool{1: true, 2: true, total - 1: true}
	for _, f := range []float64{0.2, 0.4, 0.6, 0.8} {
		points[max(1, int(f*float64(total)))] = true
	}
	for at := range points {
		t.Run(fmt.Sprint("cut-", at), func(t *testing.T) {
			run(t, fmt.Sprint("cut", at), at)
		})
	}
}

// The guard refuses when snapshots or many packs vanished behind escrow's
// back, names them, and --force overrides it; prune never deletes around
// packs an index lists that are gone.
func TestPruneGuard(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	s := s3Store(t, srv, bucket, "g")
	snaps := fixture(t, s, 4)
	ctx := context.Background()
	state := t.TempDir()
	if _, err := prune.Run(ctx, s.open(t, s.backend(t, false)), prune.Options{StateDir: state}); err != nil {
		t.Fatal(err)
	}
	root := srv.Client(t)
	key := "g/snapshots/" + snaps[0].ID.String()
	if err := root.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := prune.Run(ctx, s.open(t, s.backend(t, false)), prune.Options{StateDir: state})
	if !errors.Is(err, prune.ErrShrunk) || !strings.Contains(err.Error(), "1 of 4 snapshots ("+snaps[0].ID.Str()) ||
		!strings.Contains(err.Error(), "escrow snapshots --as-of") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("guard after a snapshot vanished: %v", err)
	}
	res, err := prune.Run(ctx, s.open(t, s.backend(t, false)), prune.Options{StateDir: state, Force: true, MaxUnused: 0})
	if err != nil || res.Remove.N+res.Repack.N == 0 {
		t.Fatalf("forced run: %+v, %v", res, err)
	}
	verify(t, s, wantVersions(snaps, 1), false)

	// Now a third of the packs vanish.
	var keys []string
	for obj := range root.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "g/data/", Recursive: true}) {
		keys = append(keys, obj.Key)
	}
	for _, k := range keys[:len(keys)/3+1] {
		if err := root.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = prune.Run(ctx, s.open(t, s.backend(t, false)), prune.Options{StateDir: state})
	if !errors.Is(err, prune.ErrShrunk) || !strings.Contains(err.Error(), fmt.Sprintf("%d of %d packs", len(keys)/3+1, len(keys))) {
		t.Fatalf("guard after packs vanished: %v", err)
	}
	// Forced, prune still refuses to work around indexed packs that are gone.
	_, err = prune.Run(ctx, s.open(t, s.backend(t, false)), prune.Options{StateDir: state, Force: true})
	if err == nil || !strings.Contains(err.Error(), "packs the index lists are not stored") {
		t.Fatalf("forced run over missing packs: %v", err)
	}
}

// A pack no index lists survives while younger than the grace period and
// goes after it.
func TestPruneGrace(t *testing.T) {
	s := store{dir: filepath.Join(t.TempDir(), "repo")}
	fixture(t, s, 2)
	ctx := context.Background()
	be := s.backend(t, false)
	junk := []byte("a pack a backup in progress has uploaded but not yet indexed")
	sum := sha256.Sum256(junk)
	h := remote.Handle{Type: remote.PackFile, Name: hex.EncodeToString(sum[:])}
	if err := be.Save(ctx, h, junk); err != nil {
		t.Fatal(err)
	}
	res, err := prune.Run(ctx, s.open(t, be), prune.Options{Grace: prune.DefaultGrace})
	if err != nil {
		t.Fatal(err)
	}
	if res.Young.N != 1 || res.Orphans.N != 0 {
		t.Fatalf("fresh unindexed pack: %+v", res)
	}
	if _, err := be.Stat(ctx, h); err != nil {
		t.Fatalf("fresh unindexed pack was deleted: %v", err)
	}
	later := func() time.Time { return time.Now().Add(prune.DefaultGrace + time.Minute) }
	res, err = prune.Run(ctx, s.open(t, be), prune.Options{Grace: prune.DefaultGrace, Now: later})
	if err != nil {
		t.Fatal(err)
	}
	if res.Orphans.N != 1 || res.Young.N != 0 {
		t.Fatalf("old unindexed pack: %+v", res)
	}
	if _, err := be.Stat(ctx, h); !remote.IsNotFound(err) {
		t.Fatalf("old unindexed pack still stored: %v", err)
	}
}

// On an Object Lock bucket forget and prune never try to delete a retained
// version: a retained snapshot stays with its protection date, and unused
// retained packs stay stored and indexed, reported as protected; restic and
// escrow still check the repository clean.
func TestPruneObjectLock(t *testing.T) {
	srv := testenv.MinIO(t)
	if srv.External {
		t.Skip("retained test objects could not be removed from an external server")
	}
	ctx := context.Background()
	root := srv.Client(t)
	bucket := "escrow-lock-" + strings.ToLower(hex.EncodeToString([]byte(t.Name()))[:12]) + fmt.Sprint(time.Now().UnixNano()%1e6)
	if err := root.MakeBucket(ctx, bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatal(err)
	}
	s := s3Store(t, srv, bucket, "lock")
	snaps := fixture(t, s, 2)

	// What the first two backups stored is retained for a day: every pack,
	// and the first snapshot.
	until := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	mode := minio.Governance
	var retained []string
	for obj := range root.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "lock/data/", Recursive: true}) {
		retained = append(retained, obj.Key)
	}
	for _, k := range append(retained, "lock/snapshots/"+snaps[0].ID.String()) {
		err := root.PutObjectRetention(ctx, bucket, k, minio.PutObjectRetentionOptions{Mode: &mode, RetainUntilDate: &until})
		if err != nil {
			t.Fatal(err)
		}
	}
	// From now on the bucket retains everything new for a day.
	days, unit := uint(1), minio.Days
	if err := root.SetObjectLockConfig(ctx, bucket, &mode, &days, &unit); err != nil {
		t.Fatal(err)
	}
	snaps = append(snaps, addVersions(t, s, 3, 4)...)

	state := t.TempDir()
	be := s.backend(t, false)
	r := s.open(t, be)
	f, err := prune.RemoveSnapshots(ctx, r, ids(snaps[:2]), prune.RetentionOf(be), state, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Removed) != 1 || f.Removed[0] != snaps[1].ID || !f.Protected[snaps[0].ID].Equal(until) {
		t.Fatalf("forget on a locked bucket: removed %v, protected %v (want %s until %s)", f.Removed, f.Protected, snaps[0].ID.Str(), until)
	}

	res, err := prune.Run(ctx, s.open(t, s.backend(t, false)), prune.Options{MaxUnused: 0, StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("protected: %d packs (%d bytes) until %s", res.Protected.N, res.Protected.Bytes, res.ProtectedUntil)
	if res.Protected.N == 0 || !res.ProtectedUntil.Equal(until) || res.Remove.N != 0 || res.Repack.N != 0 {
		t.Fatalf("prune on a locked bucket: %+v", res)
	}
	for _, k := range retained {
		if _, err := root.StatObject(ctx, bucket, k, minio.StatObjectOptions{}); err != nil {
			t.Errorf("retained pack %s is gone: %v", k, err)
		}
	}
	verify(t, s, map[repo.ID]int{snaps[0].ID: 1, snaps[2].ID: 3, snaps[3].ID: 4}, true)
}

// Prune refuses to work around damage, says what to run, and deletes
// nothing.
func TestPruneRefusesDamage(t *testing.T) {
	firstFile := func(t *testing.T, dir string) string {
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) == 0 {
			t.Fatalf("read %s: %v", dir, err)
		}
		return filepath.Join(dir, entries[0].Name())
	}
	overwrite := func(t *testing.T, name string) {
		if err := os.Chmod(name, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(name, []byte("garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir, state string)
		msg    string
		force  bool // get past the guard, which catches a vanished index file first
	}{
		{"snapshot", func(t *testing.T, dir, _ string) { overwrite(t, firstFile(t, filepath.Join(dir, "snapshots"))) }, "cannot be read", false},
		{"index", func(t *testing.T, dir, _ string) { overwrite(t, firstFile(t, filepath.Join(dir, "index"))) }, "prune does not run on a damaged index", false},
		// Every index file goes: which single one lists the trees depends on
		// how the packs fell, and one listing only data gives another error.
		{"unindexed trees", func(t *testing.T, dir, _ string) {
			if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(dir, "index"), 0o700); err != nil {
				t.Fatal(err)
			}
		}, "prune stops rather than take what is below it for unused", true},
		{"record", func(t *testing.T, _, state string) {
			entries, _ := os.ReadDir(state)
			overwrite(t, filepath.Join(state, entries[0].Name()))
		}, "listing record", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := store{dir: filepath.Join(t.TempDir(), "repo")}
			snaps := fixture(t, s, 3)
			ctx := context.Background()
			state := t.TempDir()
			be := s.backend(t, false)
			r := s.open(t, be)
			if _, err := prune.Run(ctx, r, prune.Options{StateDir: state}); err != nil {
				t.Fatal(err)
			}
			if _, err := prune.RemoveSnapshots(ctx, r, ids(snaps[:1]), nil, state, time.Now()); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, s.dir, state)
			n, size := storedBytes(t, be)
			_, err := prune.Run(ctx, s.open(t, s.backend(t, false)), prune.Options{StateDir: state, MaxUnused: 0, Force: tc.force})
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error saying %q", err, tc.msg)
			}
			if n2, size2 := storedBytes(t, be); n2 != n || size2 != size {
				t.Fatalf("packs changed from %d (%d bytes) to %d (%d bytes)", n, size, n2, size2)
			}
		})
	}
}

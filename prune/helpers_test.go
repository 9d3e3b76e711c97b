package prune_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/check"
	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/restore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const password = "prune test"

var repoOpts = repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}, PackSize: 64 << 10}

// store is a repository location: MinIO bucket and prefix, or a folder.
type store struct {
	srv    testenv.Server
	bucket string
	prefix string
	dir    string
}

func s3Store(t *testing.T, srv testenv.Server, bucket, prefix string) store {
	return store{srv: srv, bucket: bucket, prefix: prefix}
}

func (s store) backend(t *testing.T, create bool) remote.Backend {
	t.Helper()
	ctx := context.Background()
	if s.dir != "" {
		var be remote.Backend
		var err error
		if create {
			be, err = local.Create(ctx, s.dir)
		} else {
			be, err = local.Open(s.dir)
		}
		if err != nil {
			t.Fatal(err)
		}
		return be
	}
	cfg := s3.Config{Endpoint: s.srv.Endpoint, Bucket: s.bucket, Prefix: s.prefix, KeyID: s.srv.AccessKey, Secret: s.srv.SecretKey, Region: "us-east-1"}
	open := s3.Open
	if create {
		open = s3.Create
	}
	be, err := open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

// open opens the repository over be (wrapped, say, to count operations).
func (s store) open(t *testing.T, be remote.Backend) *repo.Repository {
	t.Helper()
	r, err := repo.Open(context.Background(), be, password, repoOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// version returns the content of the site dump at version v: 1 MiB in 64
// segments, each rewritten in some versions only, so that versions share
// most chunks and forgetting one leaves packs partly used.
func version(v int) []byte {
	var b bytes.Buffer
	for i := 0; i < 64; i++ {
		gen := 0
		for w := 1; w <= v; w++ {
			if (i*7+w*3)%5 == 0 {
				gen = w
			}
		}
		seg := make([]byte, 16<<10)
		rnd := rand.New(rand.NewPCG(uint64(i), uint64(gen)))
		for j := range seg {
			seg[j] = byte(rnd.Uint32())
		}
		b.Write(seg)
	}
	return b.Bytes()
}

// fixture creates a repository with one snapshot per version 1..n and
// returns the snapshots, oldest first.
func fixture(t *testing.T, s store, n int) []*repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Init(ctx, s.backend(t, true), password, repoOpts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var snaps []*repo.Snapshot
	for v := 1; v <= n; v++ {
		res, err := backup.Stream(ctx, r, bytes.NewReader(version(v)), "databases/site.sql", backup.Options{Chunks: chunk.Average(16 << 10), Host: "web1"})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, res.Snapshot)
	}
	return snaps
}

// addVersions backs up versions from..to into an existing repository.
func addVersions(t *testing.T, s store, from, to int) []*repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	r := s.open(t, s.backend(t, false))
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	var snaps []*repo.Snapshot
	for v := from; v <= to; v++ {
		res, err := backup.Stream(ctx, r, bytes.NewReader(version(v)), "databases/site.sql", backup.Options{Chunks: chunk.Average(16 << 10), Host: "web1"})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, res.Snapshot)
	}
	return snaps
}

// storedBytes sums the sizes of every pack.
func storedBytes(t *testing.T, be remote.Backend) (n int, size int64) {
	t.Helper()
	err := be.List(context.Background(), remote.PackFile, func(fi remote.FileInfo) error {
		n++
		size += fi.Size
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n, size
}

// verify checks the repository with escrow (reading all data) and restic,
// and restores every snapshot still stored, comparing it with versions.
func verify(t *testing.T, s store, want map[repo.ID]int, readData bool) {
	t.Helper()
	verifyOrphans(t, s, want, readData, false)
}

// verifyOrphans is verify that, with orphans, accepts packs no index lists:
// an interrupted prune leaves them, and restic calls them harmless.
func verifyOrphans(t *testing.T, s store, want map[repo.ID]int, readData, orphans bool) {
	t.Helper()
	ctx := context.Background()
	r := s.open(t, s.backend(t, false))
	rep, err := check.Run(ctx, r, check.Options{ReadData: readData})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Errorf("escrow check: %s", p)
	}
	if len(rep.Orphans) > 0 && !orphans {
		t.Errorf("escrow check: %d packs no index lists", len(rep.Orphans))
	}
	args := []string{"check"}
	if readData {
		args = append(args, "--read-data")
	}
	if out, err := s.restic(t, args...); err != nil {
		t.Errorf("restic check: %v\n%s", err, out)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != len(want) {
		t.Errorf("%d snapshots stored, want %d", len(snaps), len(want))
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	for _, sn := range snaps {
		v, ok := want[sn.ID]
		if !ok {
			t.Errorf("snapshot %s should be gone", sn.ID.Str())
			continue
		}
		target := t.TempDir()
		res, err := restore.Run(ctx, r, sn, restore.Options{Target: target, Verify: true})
		if err != nil || len(res.Errors) > 0 {
			t.Fatalf("restore %s: %v %v", sn.ID.Str(), err, res.Errors)
		}
		got, err := os.ReadFile(filepath.Join(target, "databases", "site.sql"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, version(v)) {
			t.Errorf("snapshot %s restores %d bytes that differ from version %d", sn.ID.Str(), len(got), v)
		}
	}
}

// restic runs the real restic on the store.
func (s store) restic(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := testenv.RequireBinary(t, "restic")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(password), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := s.dir
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_PASSWORD_FILE=" + pw}
	if addr == "" {
		addr = s.srv.URL(s.bucket, s.prefix)
		env = append(env, s.srv.Env()...)
	}
	cmd := exec.Command(bin, append([]string{"--no-cache", "-r", addr}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// cutBackend cancels a context right after the at-th Save or Remove it
// passes on, to interrupt prune at a chosen point.
type cutBackend struct {
	remote.Backend
	mu     sync.Mutex
	n, at  int
	cancel context.CancelFunc
}

func (b *cutBackend) Unwrap() remote.Backend { return b.Backend }

func (b *cutBackend) tick() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n++
	if b.at > 0 && b.n == b.at {
		b.cancel()
	}
}

func (b *cutBackend) Save(ctx context.Context, h remote.Handle, data []byte) error {
	if err := b.Backend.Save(ctx, h, data); err != nil {
		return err
	}
	b.tick()
	return nil
}

func (b *cutBackend) Remove(ctx context.Context, h remote.Handle) error {
	if err := b.Backend.Remove(ctx, h); err != nil {
		return err
	}
	b.tick()
	return nil
}

package restore_test

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/restore"
)

func setup(t *testing.T) (*repo.Repository, *repo.Snapshot, string, string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	rnd := rand.New(rand.NewSource(1))
	for i := 0; i < 6; i++ {
		data := make([]byte, 300<<10+rnd.Intn(2<<20))
		rnd.Read(data)
		p := filepath.Join(src, "d"+string(rune('a'+i%3)), "f"+string(rune('0'+i)))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sparse, err := os.Create(filepath.Join(src, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	_ = sparse.Truncate(64 << 20)
	_, _ = sparse.WriteAt([]byte("tail"), 64<<20-4)
	sparse.Close()

	r, sn := backupInto(t, filepath.Join(dir, "repo"), src, 512<<10)
	return r, sn, src, filepath.Join(dir, "repo")
}

// backupInto backs src up into a new local repository at repoDir, with
// packs of packSize bytes and a cheap key derivation.
func backupInto(t *testing.T, repoDir, src string, packSize int) (*repo.Repository, *repo.Snapshot) {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, "pw", repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}, PackSize: packSize})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	res, err := backup.Files(ctx, r, backup.Options{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	return r, res.Snapshot
}

func sameFiles(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs: %v", rel, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRestoreResumesAfterInterruption(t *testing.T) {
	r, sn, src, _ := setup(t)
	target := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := restore.Run(ctx, r, sn, restore.Options{Target: target, Workers: 1, Progress: func(p restore.Progress) {
		if p.FilesDone >= 2 {
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("cancelled restore reported success")
	}
	// No file that looks complete may be wrong: every file at its final
	// name is whole; the rest are absent or still named .escrow-partial.
	_ = filepath.Walk(target, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || strings.HasSuffix(p, ".escrow-partial") {
			return nil
		}
		rel, _ := filepath.Rel(filepath.Join(target, src), p)
		want, _ := os.ReadFile(filepath.Join(src, rel))
		if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
			t.Errorf("%s is at its final name but incomplete", rel)
		}
		return nil
	})
	res, err := restore.Run(context.Background(), r, sn, restore.Options{Target: target, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Skipped == 0 || res.Files+res.Skipped != 7 || res.Verified != 7 {
		t.Fatalf("second run: %+v", res)
	}
	sameFiles(t, src, filepath.Join(target, src))
	matches, _ := filepath.Glob(filepath.Join(target, src, "*", "*.escrow-partial"))
	if len(matches) > 0 {
		t.Fatalf("partial files left: %v", matches)
	}
}

func TestRestoreNamesFilesOfDamagedPack(t *testing.T) {
	r, sn, src, repoDir := setup(t)
	// Damage the pack holding the first data blob of one file.
	node, err := r.FindNode(context.Background(), sn, filepath.Join(src, "da", "f0"))
	if err != nil {
		t.Fatal(err)
	}
	pb, ok := r.Index().Lookup(repo.BlobHandle{ID: node.Content[0], Type: repo.DataBlob})
	if !ok {
		t.Fatal("blob not indexed")
	}
	packFile := filepath.Join(repoDir, "data", pb.PackID.String()[:2], pb.PackID.String())
	data, err := os.ReadFile(packFile)
	if err != nil {
		t.Fatal(err)
	}
	data[pb.Offset+20] ^= 0xff
	_ = os.Chmod(packFile, 0o600)
	if err := os.WriteFile(packFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	res, err := restore.Run(context.Background(), r, sn, restore.Options{Target: target})
	if err == nil {
		t.Fatal("restore of a damaged file reported success")
	}
	named := false
	for _, e := range res.Errors {
		if strings.Contains(e.Error(), filepath.Join(src, "da", "f0")) && strings.Contains(e.Error(), "corrupt") {
			named = true
		}
	}
	if !named {
		t.Fatalf("errors do not name the damaged file: %v", res.Errors)
	}
	if _, err := os.Stat(filepath.Join(target, src, "da", "f0")); err == nil {
		t.Fatal("a damaged file was put in place")
	}
	// Files in undamaged packs are restored all the same.
	if res.Files < 5 {
		t.Fatalf("only %d files restored", res.Files)
	}
}

func TestIncludeOnlyRestoresSelection(t *testing.T) {
	r, sn, src, _ := setup(t)
	target := t.TempDir()
	res, err := restore.Run(context.Background(), r, sn, restore.Options{Target: target, Include: []string{filepath.Join(src, "db")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 {
		t.Fatalf("restored %d files, want the 2 in db", res.Files)
	}
	if _, err := os.Stat(filepath.Join(target, src, "da")); !os.IsNotExist(err) {
		t.Fatalf("unselected directory restored: %v", err)
	}
	if _, err := restore.Run(context.Background(), r, sn, restore.Options{Target: target, Include: []string{"/no/such/path"}}); err == nil {
		t.Fatal("include of a missing path succeeded")
	}
}

// TestRestoreAllocatesLittlePerPack keeps a restore's memory flat: each
// worker reads its packs into one buffer, decrypts blobs there and
// decompresses into one more, so restoring allocates far less than it
// writes (it used to allocate several times as much).
func TestRestoreAllocatesLittlePerPack(t *testing.T) {
	if testing.Short() {
		t.Skip("backs up and restores 24 MiB")
	}
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(2))
	const files, size = 4, 6 << 20
	for i := range files {
		data := make([]byte, size)
		for j := range data {
			data[j] = 'a' + byte(rnd.Intn(16)) // compresses to about half
		}
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('0'+i))), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	be, err := local.Create(ctx, filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	// The retry layer, as the command line uses: it reads whole ranges.
	r, err := repo.Init(ctx, remote.WithRetry(be, remote.RetryOptions{}), "pw", repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	res, err := backup.Files(ctx, r, backup.Options{Paths: []string{src}})
	if err != nil {
		t.Fatal(err)
	}
	// The workers' buffers: the largest pack and the largest blob each
	// (chunk boundaries, and so these, depend on the random polynomial).
	const workers = 2
	var maxPack, maxBlob uint64
	for _, size := range r.Index().Packs() {
		maxPack = max(maxPack, uint64(size))
	}
	for i := range files {
		n, err := r.FindNode(ctx, res.Snapshot, filepath.Join(src, "f"+string(rune('0'+i))))
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range n.Content {
			pb, _ := r.Index().Lookup(repo.BlobHandle{ID: id, Type: repo.DataBlob})
			maxBlob = max(maxBlob, uint64(pb.PlainLength()))
		}
	}
	buffers := workers * (maxPack + maxBlob)

	target := t.TempDir()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if _, err := restore.Run(ctx, r, res.Snapshot, restore.Options{Target: target, Workers: workers}); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	sameFiles(t, src, filepath.Join(target, src))
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("restoring %d MiB allocated %.1f MiB, %.1f MiB of them the workers' buffers at most", files*size>>20, mib(alloc), mib(buffers))
	if alloc > buffers+files*size/4 {
		t.Errorf("restoring %d MiB allocated %.1f MiB, want at most the buffers (%.1f MiB) and a quarter of that", files*size>>20, mib(alloc), mib(buffers))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// TestRestorePassesOverDamagedFolder damages the tree of one folder: the
// restore reports that folder and still restores everything else.
func TestRestorePassesOverDamagedFolder(t *testing.T) {
	ctx := context.Background()
	r, sn, src, repoDir := setup(t)
	node, err := r.FindNode(ctx, sn, filepath.Join(src, "da"))
	if err != nil {
		t.Fatal(err)
	}
	pb, ok := r.Index().Lookup(repo.BlobHandle{ID: *node.Subtree, Type: repo.TreeBlob})
	if !ok {
		t.Fatal("tree not indexed")
	}
	packFile := filepath.Join(repoDir, "data", pb.PackID.String()[:2], pb.PackID.String())
	data, err := os.ReadFile(packFile)
	if err != nil {
		t.Fatal(err)
	}
	data[pb.Offset+pb.Length/2] ^= 0x10
	_ = os.Chmod(packFile, 0o600)
	if err := os.WriteFile(packFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// A fresh reader: the one that wrote the backup remembers its trees.
	be, err := local.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := repo.Open(ctx, be, "pw", repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	res, err := restore.Run(ctx, fresh, sn, restore.Options{Target: target, Verify: true})
	if err == nil {
		t.Fatal("restore of a snapshot with a damaged folder reported success")
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), filepath.Join(src, "da")+": nothing below this folder") {
		t.Fatalf("errors %v, want one naming the folder %s", res.Errors, filepath.Join(src, "da"))
	}
	for _, d := range []string{"db", "dc"} {
		sameFiles(t, filepath.Join(src, d), filepath.Join(target, src, d))
	}
	if res.Files != 5 { // 6 files and sparse.img, less the 2 in da
		t.Errorf("%d files restored, want 5", res.Files)
	}
}

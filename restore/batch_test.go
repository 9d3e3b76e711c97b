package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/restore"
)

// manyFiles backs up a tree of small files in several folders, with a
// hard-linked file whose three links lie in different folders, symlinks,
// empty files and two files of several chunks, in packs of 128 KiB: many
// small files share each pack. Folders get old times, so a restore that set
// them before their contents were written shows it.
func manyFiles(t *testing.T) (*repo.Repository, *repo.Snapshot, string) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	rnd := rand.New(rand.NewSource(3))
	write := func(rel string, data []byte) {
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 240 {
		data := make([]byte, rnd.Intn(12<<10))
		rnd.Read(data)
		write(fmt.Sprintf("d%d/s%d/f%03d", i%4, i%3, i), data)
	}
	for i := range 2 {
		data := make([]byte, 3<<20)
		rnd.Read(data)
		write(fmt.Sprintf("d%d/big%d", i, i), data)
	}
	write("d0/empty", nil)
	write("d3/s2/empty", nil)
	linked := make([]byte, 20<<10)
	rnd.Read(linked)
	write("d0/linked", linked)
	for _, l := range []string{"d1/s0/link-a", "d3/link-b"} {
		if err := os.Link(filepath.Join(src, "d0/linked"), filepath.Join(src, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../d0/f000", filepath.Join(src, "d2/sym")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "d2"), 0o750); err != nil {
		t.Fatal(err)
	}

	r, sn := backupInto(t, filepath.Join(dir, "repo"), src, 128<<10)
	return r, sn, src
}

// sameTree checks that dst holds src entry for entry: content, mode, and
// modification time of files and folders, symlink targets, and which files
// are links of one another.
func sameTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, a os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		b, err := os.Lstat(q)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if a.Mode() != b.Mode() || !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: mode %v, mtime %v; want %v, %v", rel, b.Mode(), b.ModTime(), a.Mode(), a.ModTime())
		}
		switch {
		case a.Mode().IsRegular():
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(q)
			if !bytes.Equal(x, y) {
				t.Errorf("%s: content differs", rel)
			}
		case a.Mode()&os.ModeSymlink != 0:
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(q)
			if x != y {
				t.Errorf("%s: symlink to %q, want %q", rel, y, x)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	partial, _ := filepath.Glob(filepath.Join(dst, "*", "*", "*.escrow-partial"))
	if len(partial) > 0 {
		t.Errorf("partial files left: %v", partial)
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(x, y) {
		t.Errorf("%s and %s are not links of one file", a, b)
	}
}

// dataPacks counts the packs holding the snapshot's file content.
func dataPacks(t *testing.T, r *repo.Repository, sn *repo.Snapshot) int {
	t.Helper()
	packs := map[repo.ID]bool{}
	err := r.Walk(context.Background(), *sn.Tree, "", func(_ string, n *repo.Node) error {
		for _, id := range n.Content {
			pb, ok := r.Index().Lookup(repo.BlobHandle{ID: id, Type: repo.DataBlob})
			if !ok {
				return fmt.Errorf("blob %s not indexed", id.Str())
			}
			packs[pb.PackID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(packs)
}

// TestRestoreInSmallBatches restores the same snapshot in one batch and in
// batches of three entries: both give the tree back, links and folder
// times included. In one batch each pack is read once; in small batches
// packs whose blobs span batches are read once per batch.
func TestRestoreInSmallBatches(t *testing.T) {
	r, sn, src := manyFiles(t)
	packs := dataPacks(t, r, sn)
	ctx := context.Background()
	for _, tc := range []struct {
		name           string
		entries, blobs int
	}{
		{"one batch", 1 << 20, 1 << 20},
		{"three entries", 3, 1 << 20},
		{"four blobs", 1 << 20, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := t.TempDir()
			// Workers call back concurrently, with copies taken at
			// different moments: the last call is the one after them.
			var mu sync.Mutex
			var last restore.Progress
			res, reads, err := restore.RunInBatches(ctx, r, sn, restore.Options{Target: target, Verify: true,
				Progress: func(p restore.Progress) {
					mu.Lock()
					last = p
					mu.Unlock()
				}}, tc.entries, tc.blobs)
			if err != nil {
				t.Fatal(err)
			}
			sameTree(t, src, filepath.Join(target, src))
			sameFile(t, filepath.Join(target, src, "d0/linked"), filepath.Join(target, src, "d1/s0/link-a"))
			sameFile(t, filepath.Join(target, src, "d0/linked"), filepath.Join(target, src, "d3/link-b"))
			const files = 240 + 2 + 2 + 1 // and the two further links
			if res.Files != files || res.Hardlinks != 2 || res.Symlinks != 1 || res.Verified != files || res.Skipped != 0 {
				t.Errorf("result %+v, want %d files, 2 hard links, 1 symlink", res, files)
			}
			if !last.Counted || last.FilesTotal != files+2 || last.FilesDone != files || last.BytesDone != last.BytesTotal-2*20<<10 {
				t.Errorf("last progress %+v", last)
			}
			t.Logf("%d ranged reads of %d packs", reads, packs)
			if tc.entries > 1000 && tc.blobs > 1000 && reads != int64(packs) {
				t.Errorf("one batch read %d ranges of %d packs, want each pack once", reads, packs)
			}
			if (tc.entries < 10 || tc.blobs < 10) && reads <= int64(packs) {
				t.Errorf("small batches read %d ranges of %d packs: no pack spanned batches, the test tests nothing", reads, packs)
			}
		})
	}
}

// TestRestoreInBatchesOverPartlyCorrectTarget restores over an earlier
// restore in which some files were changed, cut or removed: in small
// batches, only those are written again, and the tree comes back whole.
func TestRestoreInBatchesOverPartlyCorrectTarget(t *testing.T) {
	r, sn, src := manyFiles(t)
	ctx := context.Background()
	target := t.TempDir()
	if _, _, err := restore.RunInBatches(ctx, r, sn, restore.Options{Target: target}, 5, 5); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(target, src)
	changed := []string{"d0/s0/f000", "d1/s1/f001", "d1/big1", "d3/link-b"}
	for _, rel := range changed {
		p := filepath.Join(got, rel)
		if err := os.WriteFile(p, []byte("changed"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(filepath.Join(got, "d0/big0"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(got, "d2/s2/f002")); err != nil {
		t.Fatal(err)
	}
	res, _, err := restore.RunInBatches(ctx, r, sn, restore.Options{Target: target, Verify: true}, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, got)
	sameFile(t, filepath.Join(got, "d0/linked"), filepath.Join(got, "d3/link-b"))
	// Writing to d3/link-b changed d0/linked too: 6 files are written
	// again, the other 239 of the 245 are left as they are.
	if res.Files != 6 || res.Skipped != 245-6 || res.Verified != 245 || res.Hardlinks != 2 {
		t.Errorf("result %+v, want 6 files written, 239 skipped, 245 verified, 2 hard links", res)
	}
}

// TestRestoreReadsPacksInParts restores with ranged reads of packs bounded
// small: each pack's range is read in several parts (one blob each when the
// bound is below every blob), and the tree comes back byte for byte, links
// and all, with a file's chunks spread over parts and packs.
func TestRestoreReadsPacksInParts(t *testing.T) {
	r, sn, src := manyFiles(t)
	packs := dataPacks(t, r, sn)
	ctx := context.Background()
	for _, part := range []int64{1, 32 << 10, 1 << 30} {
		t.Run(fmt.Sprintf("part %d", part), func(t *testing.T) {
			target := t.TempDir()
			res, read, parts, err := restore.RunInParts(ctx, r, sn, restore.Options{Target: target, Verify: true}, part)
			if err != nil {
				t.Fatal(err)
			}
			sameTree(t, src, filepath.Join(target, src))
			sameFile(t, filepath.Join(target, src, "d0/linked"), filepath.Join(target, src, "d3/link-b"))
			const files = 240 + 2 + 2 + 1
			if res.Files != files || res.Verified != files {
				t.Errorf("result %+v, want %d files restored and verified", res, files)
			}
			t.Logf("%d packs read in %d parts", read, parts)
			if read != int64(packs) {
				t.Errorf("read %d packs, want each of the %d once", read, packs)
			}
			switch {
			case part == 1 && parts != int64(r.Index().Len()-treeBlobs(t, r)):
				t.Errorf("parts of 1 byte: %d reads, want one per data blob (%d)", parts, r.Index().Len()-treeBlobs(t, r))
			case part == 32<<10 && parts <= 2*int64(packs):
				t.Errorf("parts of 32 KiB: %d reads of %d packs of 128 KiB, want several per pack", parts, packs)
			case part == 1<<30 && parts != int64(packs):
				t.Errorf("parts larger than any pack: %d reads, want one per pack (%d)", parts, packs)
			}
		})
	}
}

// treeBlobs counts the tree blobs in r's index.
func treeBlobs(t *testing.T, r *repo.Repository) int {
	t.Helper()
	n := 0
	r.Index().Each(func(pb repo.PackedBlob) {
		if pb.Type == repo.TreeBlob {
			n++
		}
	})
	return n
}

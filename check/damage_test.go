package check_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/check"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

// indexFile is restic's index format, written here to fake index damage
// that a correct writer never produces.
type indexFile struct {
	Packs []indexPack `json:"packs"`
}

type indexPack struct {
	ID    repo.ID     `json:"id"`
	Blobs []indexBlob `json:"blobs"`
}

type indexBlob struct {
	ID                 repo.ID       `json:"id"`
	Type               repo.BlobType `json:"type"`
	Offset             uint32        `json:"offset"`
	Length             uint32        `json:"length"`
	UncompressedLength uint32        `json:"uncompressed_length,omitempty"`
}

func (f *fixture) list(t remote.FileType) []repo.ID {
	f.t.Helper()
	ids, err := f.open(nil).List(context.Background(), t)
	if err != nil {
		f.t.Fatal(err)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	return ids
}

// rewriteIndex replaces every index file by one holding edit's result.
func (f *fixture) rewriteIndex(edit func([]indexPack) []indexPack) {
	f.t.Helper()
	ctx := context.Background()
	r := f.open(nil)
	var all []indexPack
	for _, id := range f.list(remote.IndexFile) {
		var idx indexFile
		if err := r.LoadJSON(ctx, remote.IndexFile, id, &idx); err != nil {
			f.t.Fatal(err)
		}
		all = append(all, idx.Packs...)
		if err := r.Backend().Remove(ctx, remote.Handle{Type: remote.IndexFile, Name: id.String()}); err != nil {
			f.t.Fatal(err)
		}
	}
	if _, err := r.SaveJSON(ctx, remote.IndexFile, indexFile{Packs: edit(all)}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) objectFile(t remote.FileType, id repo.ID) string {
	return filepath.Join(f.dir, string(t), id.String())
}

func onlyKinds(t *testing.T, rep *check.Report, kinds ...string) {
	t.Helper()
	for _, p := range rep.Problems {
		if !slices.Contains(kinds, p.Kind) {
			t.Fatalf("unexpected %s problem: %s", p.Kind, p)
		}
	}
}

func TestDamagedSnapshot(t *testing.T) {
	f := newFixture(t)
	bad := f.snaps[0]
	flipBit(t, f.objectFile(remote.SnapshotFile, bad), 40, 0)
	rep := f.check(check.Options{ReadData: true})
	if len(rep.Problems) != 1 {
		t.Fatalf("got %d problems, want 1", len(rep.Problems))
	}
	p := rep.Problems[0]
	if p.Kind != check.KindSnapshot || !strings.Contains(p.Err.Error(), bad.Str()) ||
		len(p.Affected) != 1 || p.Affected[0] != (check.Affected{Snapshot: bad, Path: "/"}) {
		t.Fatalf("got %s %v, want snapshot problem naming %s", p.Kind, p, bad.Str())
	}
	if !errors.Is(p.Err, repo.ErrCorrupt) {
		t.Fatalf("error %v does not match repo.ErrCorrupt", p.Err)
	}
	if rep.Snapshots != 2 || rep.Trees == 0 {
		t.Fatalf("the intact snapshot was not checked: %+v", rep)
	}
}

// TestDeletedIndexFile deletes the index of the latest backup: its packs
// become orphans and the snapshot loses its root tree.
func TestDeletedIndexFile(t *testing.T) {
	f := newFixture(t)
	before := f.list(remote.IndexFile)
	f.write("new/file.bin", []byte("added before the third backup"))
	sn := f.backup()
	var deleted repo.ID
	for _, id := range f.list(remote.IndexFile) {
		if !slices.Contains(before, id) {
			deleted = id
		}
	}
	r := f.open(nil)
	var idx indexFile
	if err := r.LoadJSON(context.Background(), remote.IndexFile, deleted, &idx); err != nil {
		t.Fatal(err)
	}
	var wantOrphans []repo.ID
	for _, p := range idx.Packs {
		wantOrphans = append(wantOrphans, p.ID)
	}
	sort.Slice(wantOrphans, func(i, j int) bool { return wantOrphans[i].String() < wantOrphans[j].String() })
	if err := os.Remove(f.objectFile(remote.IndexFile, deleted)); err != nil {
		t.Fatal(err)
	}

	rep := f.check(check.Options{})
	if !slices.Equal(rep.Orphans, wantOrphans) {
		t.Fatalf("orphans %v, want %v", rep.Orphans, wantOrphans)
	}
	onlyKinds(t, rep, check.KindMissingBlob)
	found := false
	for _, p := range rep.Problems {
		found = found || slices.Contains(p.Affected, check.Affected{Snapshot: sn, Path: "/"})
	}
	if !found {
		t.Fatalf("no missing-blob problem names snapshot %s", sn.Str())
	}
}

// TestDroppedIndexEntry leaves one data pack out of the index: the pack is
// an orphan and each of its blobs is missing for exactly its files.
func TestDroppedIndexEntry(t *testing.T) {
	f := newFixture(t)
	users := f.users()
	id, blobs := f.dataPack()
	f.rewriteIndex(func(packs []indexPack) []indexPack {
		return slices.DeleteFunc(packs, func(p indexPack) bool { return p.ID == id })
	})
	rep := f.check(check.Options{ReadData: true})
	if !slices.Equal(rep.Orphans, []repo.ID{id}) {
		t.Fatalf("orphans %v, want %s", rep.Orphans, id.Str())
	}
	onlyKinds(t, rep, check.KindMissingBlob)
	if len(rep.Problems) != len(blobs) {
		t.Fatalf("got %d problems, want one per blob (%d)", len(rep.Problems), len(blobs))
	}
	for _, p := range rep.Problems {
		i := slices.IndexFunc(blobs, func(b repo.PackedBlob) bool { return b.BlobHandle == p.Blob })
		if i < 0 {
			t.Fatalf("missing %s was not in the dropped pack", p.Blob)
		}
		if got, want := affectedOf(p), expectedUsers(users, blobs[i:i+1]); !slices.Equal(got, want) {
			t.Fatalf("%s: affected %v, want %v", p.Blob, got, want)
		}
	}
}

func TestDamagedIndexFile(t *testing.T) {
	f := newFixture(t)
	bad := f.list(remote.IndexFile)[0]
	flipBit(t, f.objectFile(remote.IndexFile, bad), 50, 1)
	rep := f.check(check.Options{ReadData: true})
	// Blobs look missing only because the index is incomplete: not reported.
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != check.KindIndex || !strings.Contains(rep.Problems[0].Err.Error(), bad.Str()) {
		t.Fatalf("got %d problems, want one index problem naming %s", len(rep.Problems), bad.Str())
	}
	if len(rep.Orphans) != 0 {
		t.Fatalf("packs of the unreadable index reported as orphans: %v", rep.Orphans)
	}
	// Restore cannot find what only the damaged file lists: the files
	// that need it are named.
	if len(rep.Problems[0].Affected) == 0 {
		t.Fatalf("the damaged index file's problem lists no affected files: %v", rep.Problems[0])
	}
	t.Logf("%v; affects %v", rep.Problems[0], rep.Problems[0].Affected)
}

// TestTreePackDeleted removes the pack holding the first snapshot's root:
// the folder "/" of that snapshot is what is affected.
func TestTreePackDeleted(t *testing.T) {
	f := newFixture(t)
	r := f.open(nil)
	ctx := context.Background()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	sn, err := r.LoadSnapshot(ctx, f.snaps[0])
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := r.Index().Lookup(repo.BlobHandle{ID: *sn.Tree, Type: repo.TreeBlob})
	if err := os.Remove(f.packFile(pb.PackID)); err != nil {
		t.Fatal(err)
	}
	rep := f.check(check.Options{})
	onlyKinds(t, rep, check.KindMissingPack, check.KindTree)
	root := check.Affected{Snapshot: sn.ID, Path: "/"}
	var kinds []string
	for _, p := range rep.Problems {
		if p.Pack != pb.PackID {
			t.Fatalf("%s problem about pack %s, want %s", p.Kind, p.Pack.Str(), pb.PackID.Str())
		}
		if p.Kind == check.KindMissingPack && !slices.Contains(p.Affected, root) {
			t.Fatalf("missing-pack affected %v lacks the root of %s", affectedOf(p), sn.ID.Str())
		}
		kinds = append(kinds, p.Kind)
	}
	if !slices.Contains(kinds, check.KindMissingPack) || !slices.Contains(kinds, check.KindTree) {
		t.Fatalf("got %v, want missing-pack and tree", kinds)
	}
}

// TestHeaderDisagreesWithIndex swaps two blobs' places in the index: the
// pack is intact, its header disagrees, and each blob fails at the place
// the index gives.
func TestHeaderDisagreesWithIndex(t *testing.T) {
	f := newFixture(t)
	users := f.users()
	id, blobs := f.dataPack()
	f.rewriteIndex(func(packs []indexPack) []indexPack {
		for _, p := range packs {
			if p.ID == id {
				a, b := &p.Blobs[0], &p.Blobs[1]
				a.Offset, b.Offset = b.Offset, a.Offset
				a.Length, b.Length = b.Length, a.Length
				a.UncompressedLength, b.UncompressedLength = b.UncompressedLength, a.UncompressedLength
			}
		}
		return packs
	})
	rep := f.check(check.Options{ReadData: true})
	onlyKinds(t, rep, check.KindPackHeader, check.KindBlob)
	if len(rep.Problems) != 3 || rep.Problems[0].Kind != check.KindPackHeader || rep.Problems[0].Pack != id {
		t.Fatalf("got %d problems, want pack-header and two blob problems about %s", len(rep.Problems), id.Str())
	}
	for _, p := range rep.Problems[1:] {
		i := slices.IndexFunc(blobs, func(b repo.PackedBlob) bool { return b.BlobHandle == p.Blob })
		if i < 0 || i > 1 {
			t.Fatalf("blob problem about %s, want one of the two swapped blobs", p.Blob)
		}
		if got, want := affectedOf(p), expectedUsers(users, blobs[i:i+1]); !slices.Equal(got, want) {
			t.Fatalf("%s: affected %v, want %v", p.Blob, got, want)
		}
	}
}

// failingPack fails whole-object reads of one pack, as an unreachable or
// failing store would.
type failingPack struct {
	remote.Backend
	name string
}

func (b failingPack) Load(ctx context.Context, h remote.Handle, off, length int64) (io.ReadCloser, error) {
	if h.Type == remote.PackFile && h.Name == b.name {
		return nil, fmt.Errorf("load %s: injected I/O error", h)
	}
	return b.Backend.Load(ctx, h, off, length)
}

func TestPackReadError(t *testing.T) {
	f := newFixture(t)
	id, _ := f.dataPack()
	lb, err := local.Open(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	rep := f.checkWith(failingPack{Backend: lb, name: id.String()}, check.Options{ReadData: true})
	if len(rep.Problems) != 1 || rep.Problems[0].Kind != check.KindPackRead || rep.Problems[0].Pack != id {
		t.Fatalf("got %d problems, want one pack-read about %s", len(rep.Problems), id.Str())
	}
}

func TestAffectedIsCapped(t *testing.T) {
	f := newEmptyFixture(t)
	same := []byte(strings.Repeat("the same content in every file\n", 300))
	for i := range 150 {
		f.write(fmt.Sprintf("same/f%03d", i), same)
	}
	f.backup()
	var data repo.ID
	for id, blobs := range f.packs() {
		if blobs[0].Type == repo.DataBlob {
			data = id
		}
	}
	if err := os.Remove(f.packFile(data)); err != nil {
		t.Fatal(err)
	}
	rep := f.check(check.Options{})
	if len(rep.Problems) != 1 {
		t.Fatalf("got %d problems, want 1", len(rep.Problems))
	}
	if p := rep.Problems[0]; len(p.Affected) != check.MaxAffected || p.MoreAffected != 150-check.MaxAffected {
		t.Fatalf("affected %d + %d more, want %d + %d", len(p.Affected), p.MoreAffected, check.MaxAffected, 150-check.MaxAffected)
	}
}

func TestCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := check.Run(ctx, f.open(nil), check.Options{ReadData: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestSubsetReads(t *testing.T) {
	f := newFixture(t)
	total := 0
	for part := 1; part <= 3; part++ {
		rep := f.check(check.Options{SubsetPart: part, SubsetParts: 3})
		if !rep.OK() {
			t.Fatalf("part %d/3: %d problems", part, len(rep.Problems))
		}
		total += rep.PacksRead
	}
	packs := len(f.packs())
	if total != packs {
		t.Fatalf("parts 1..3 read %d packs, want %d", total, packs)
	}
	if rep := f.check(check.Options{SubsetFraction: 0.01}); rep.PacksRead != 1 {
		t.Fatalf("1%% of %d packs read %d, want 1", packs, rep.PacksRead)
	}
}

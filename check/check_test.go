package check_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/check"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

const password = "secret"

// repoOptions make scrypt cheap and packs small, so a few MiB of files
// spread over a dozen packs of a few blobs each.
func repoOptions() repo.Options {
	return repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}, PackSize: 256 << 10}
}

// fixture is a local repository with two snapshots of a folder of random,
// incompressible files; the second snapshot shares most data and trees.
type fixture struct {
	t        *testing.T
	dir, src string
	snaps    []repo.ID
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := newEmptyFixture(t)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range 24 {
		f.write(fmt.Sprintf("d%d/sub%d/file%02d.bin", i%3, i%2, i), randomBytes(rnd, 60<<10+rnd.IntN(60<<10)))
	}
	f.write("big.bin", randomBytes(rnd, 1500<<10))
	f.backup()
	f.write("d0/sub0/file00.bin", randomBytes(rnd, 70<<10))
	f.backup()
	return f
}

func newEmptyFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, dir: filepath.Join(t.TempDir(), "repo"), src: filepath.Join(t.TempDir(), "src")}
	be, err := local.Create(context.Background(), f.dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, password, repoOptions())
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return f
}

func randomBytes(rnd *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rnd.Uint32())
	}
	return b
}

func (f *fixture) write(rel string, data []byte) {
	f.t.Helper()
	name := filepath.Join(f.src, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(name), 0o700); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) backup() repo.ID {
	f.t.Helper()
	r := f.open(nil)
	if err := r.LoadIndex(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	res, err := backup.Files(context.Background(), r, backup.Options{Paths: []string{f.src}, Host: "test", Workers: 2})
	if err != nil {
		f.t.Fatal(err)
	}
	f.snaps = append(f.snaps, res.Snapshot.ID)
	return res.Snapshot.ID
}

// open opens the repository afresh (with an empty index), over be if given.
func (f *fixture) open(be remote.Backend) *repo.Repository {
	f.t.Helper()
	if be == nil {
		lb, err := local.Open(f.dir)
		if err != nil {
			f.t.Fatal(err)
		}
		be = lb
	}
	r, err := repo.Open(context.Background(), be, password, repoOptions())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(r.Close)
	return r
}

func (f *fixture) check(opts check.Options) *check.Report {
	f.t.Helper()
	return f.checkWith(nil, opts)
}

func (f *fixture) checkWith(be remote.Backend, opts check.Options) *check.Report {
	f.t.Helper()
	rep, err := check.Run(context.Background(), f.open(be), opts)
	if err != nil {
		f.t.Fatalf("check: %v", err)
	}
	for _, p := range rep.Problems {
		f.t.Logf("%s: %s (affected %v, %d more)", p.Kind, p, affectedOf(p), p.MoreAffected)
	}
	return rep
}

// packs returns the indexed packs and their blobs in pack order.
func (f *fixture) packs() map[repo.ID][]repo.PackedBlob {
	f.t.Helper()
	r := f.open(nil)
	if err := r.LoadIndex(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	out := map[repo.ID][]repo.PackedBlob{}
	r.Index().Each(func(pb repo.PackedBlob) { out[pb.PackID] = append(out[pb.PackID], pb) })
	for _, blobs := range out {
		sort.Slice(blobs, func(i, j int) bool { return blobs[i].Offset < blobs[j].Offset })
	}
	return out
}

// dataPack returns the data pack with the most blobs.
func (f *fixture) dataPack() (repo.ID, []repo.PackedBlob) {
	f.t.Helper()
	var best repo.ID
	var bestBlobs []repo.PackedBlob
	for id, blobs := range f.packs() {
		if blobs[0].Type == repo.DataBlob && len(blobs) > len(bestBlobs) {
			best, bestBlobs = id, blobs
		}
	}
	if len(bestBlobs) < 2 {
		f.t.Fatalf("no data pack with two blobs")
	}
	return best, bestBlobs
}

func (f *fixture) packFile(id repo.ID) string {
	return filepath.Join(f.dir, "data", id.String()[:2], id.String())
}

// users maps each blob to "snapshot:path" of every file or folder needing it.
func (f *fixture) users() map[repo.BlobHandle][]string {
	f.t.Helper()
	ctx := context.Background()
	r := f.open(nil)
	if err := r.LoadIndex(ctx); err != nil {
		f.t.Fatal(err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[repo.BlobHandle][]string{}
	var walk func(sn repo.ID, p string, id repo.ID)
	walk = func(sn repo.ID, p string, id repo.ID) {
		key := fmt.Sprintf("%s:%s", sn.Str(), p)
		th := repo.BlobHandle{ID: id, Type: repo.TreeBlob}
		out[th] = append(out[th], key)
		tree, err := r.LoadTree(ctx, id)
		if err != nil {
			f.t.Fatal(err)
		}
		for _, n := range tree.Nodes {
			np := path.Join(p, n.Name)
			switch n.Type {
			case repo.NodeDir:
				walk(sn, np, *n.Subtree)
			case repo.NodeFile:
				for _, c := range n.Content {
					h := repo.BlobHandle{ID: c, Type: repo.DataBlob}
					k := fmt.Sprintf("%s:%s", sn.Str(), np)
					if !slices.Contains(out[h], k) {
						out[h] = append(out[h], k)
					}
				}
			}
		}
	}
	for _, sn := range snaps {
		walk(sn.ID, "/", *sn.Tree)
	}
	return out
}

func expectedUsers(users map[repo.BlobHandle][]string, blobs []repo.PackedBlob) []string {
	var out []string
	for _, b := range blobs {
		for _, u := range users[b.BlobHandle] {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	sort.Strings(out)
	return out
}

func affectedOf(p check.Problem) []string {
	out := make([]string, len(p.Affected))
	for i, a := range p.Affected {
		out[i] = fmt.Sprintf("%s:%s", a.Snapshot.Str(), a.Path)
	}
	sort.Strings(out)
	return out
}

func TestCleanRepository(t *testing.T) {
	f := newFixture(t)
	for _, readData := range []bool{false, true} {
		t.Run(fmt.Sprintf("read-data=%v", readData), func(t *testing.T) {
			stages := map[string]int{}
			rep := f.check(check.Options{ReadData: readData, Progress: func(stage string, done, total int) { stages[stage]++ }})
			if !rep.OK() || len(rep.Orphans) > 0 {
				t.Fatalf("clean repository: %d problems, orphans %v", len(rep.Problems), rep.Orphans)
			}
			if rep.Snapshots != 2 || rep.Trees == 0 || rep.Packs < 8 || rep.Blobs == 0 {
				t.Fatalf("report counts %+v", rep)
			}
			want := 0
			if readData {
				want = rep.Packs
			}
			if rep.PacksRead != want {
				t.Fatalf("read %d of %d packs, want %d", rep.PacksRead, rep.Packs, want)
			}
			if stages[check.StageTrees] == 0 || stages[check.StageSnapshots] == 0 || (readData && stages[check.StageReadData] != rep.Packs) {
				t.Fatalf("progress calls %v", stages)
			}
		})
	}
}

func flipBit(t *testing.T, name string, off int64, bit uint) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 1 << bit
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPackDamage damages one data pack in each way storage can, and checks
// that exactly that pack is reported with the files that need its lost blobs.
func TestPackDamage(t *testing.T) {
	tests := []struct {
		name     string
		readData bool
		kind     string // "" when the damage cannot be seen
		// damage changes the pack file and returns the blobs it loses.
		damage func(t *testing.T, file string, blobs []repo.PackedBlob) []repo.PackedBlob
	}{
		{"bit flip, read data", true, check.KindPackHash, func(t *testing.T, file string, blobs []repo.PackedBlob) []repo.PackedBlob {
			flipBit(t, file, int64(blobs[0].Offset+blobs[0].Length/2), 3)
			return blobs[:1]
		}},
		// Without reading data the size is all check looks at, and a bit
		// flip does not change it.
		{"bit flip, index only", false, "", func(t *testing.T, file string, blobs []repo.PackedBlob) []repo.PackedBlob {
			flipBit(t, file, int64(blobs[0].Offset+blobs[0].Length/2), 3)
			return nil
		}},
		{"truncated, index only", false, check.KindPackSize, func(t *testing.T, file string, blobs []repo.PackedBlob) []repo.PackedBlob {
			last := blobs[len(blobs)-1]
			if err := os.Truncate(file, int64(last.Offset+last.Length/2)); err != nil {
				t.Fatal(err)
			}
			return blobs // not read: every blob is presumed lost
		}},
		{"truncated, read data", true, check.KindPackSize, func(t *testing.T, file string, blobs []repo.PackedBlob) []repo.PackedBlob {
			last := blobs[len(blobs)-1]
			if err := os.Truncate(file, int64(last.Offset+last.Length/2)); err != nil {
				t.Fatal(err)
			}
			return blobs[len(blobs)-1:]
		}},
		{"extended, index only", false, check.KindPackSize, func(t *testing.T, file string, blobs []repo.PackedBlob) []repo.PackedBlob {
			appendBytes(t, file, []byte("tail!"))
			return blobs
		}},
		{"extended, read data", true, check.KindPackSize, func(t *testing.T, file string, blobs []repo.PackedBlob) []repo.PackedBlob {
			appendBytes(t, file, []byte("tail!"))
			return nil // every blob still verifies where the index says
		}},
		{"deleted", true, check.KindMissingPack, func(t *testing.T, file string, blobs []repo.PackedBlob) []repo.PackedBlob {
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			return blobs
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			users := f.users()
			id, blobs := f.dataPack()
			lost := tt.damage(t, f.packFile(id), blobs)
			rep := f.check(check.Options{ReadData: tt.readData})
			if tt.kind == "" {
				if !rep.OK() {
					t.Fatalf("got %d problems, want none", len(rep.Problems))
				}
				return
			}
			if len(rep.Problems) != 1 {
				t.Fatalf("got %d problems, want 1", len(rep.Problems))
			}
			p := rep.Problems[0]
			if p.Kind != tt.kind || p.Pack != id {
				t.Fatalf("got %s about pack %s, want %s about %s", p.Kind, p.Pack.Str(), tt.kind, id.Str())
			}
			want := expectedUsers(users, lost)
			if got := affectedOf(p); !slices.Equal(got, want) || p.MoreAffected != 0 {
				t.Fatalf("affected %v (+%d), want %v", got, p.MoreAffected, want)
			}
			if len(lost) > 0 && len(want) == 0 {
				t.Fatal("test damaged blobs no file uses")
			}
			if nothingLost := strings.Contains(p.Fix, "no file is affected"); nothingLost != (len(want) == 0) {
				t.Fatalf("%d files affected, but the fix says %q", len(want), p.Fix)
			}
		})
	}
}

func appendBytes(t *testing.T, name string, b []byte) {
	t.Helper()
	fh, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRandomBitFlips flips one random bit of a random pack at a time: reading
// data must find every one, and blame that pack only.
func TestRandomBitFlips(t *testing.T) {
	f := newFixture(t)
	packs := f.packs()
	ids := make([]repo.ID, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	for i := range 20 {
		id := ids[rnd.IntN(len(ids))]
		fi, err := os.Stat(f.packFile(id))
		if err != nil {
			t.Fatal(err)
		}
		off, bit := rnd.Int64N(fi.Size()), uint(rnd.IntN(8))
		flipBit(t, f.packFile(id), off, bit)
		rep := f.check(check.Options{ReadData: true})
		found := false
		for _, p := range rep.Problems {
			if p.Pack != id {
				t.Fatalf("flip %d (pack %s, byte %d of %d): false alarm %s: %s", i, id.Str(), off, fi.Size(), p.Kind, p)
			}
			found = found || p.Kind == check.KindPackHash
		}
		if !found {
			t.Fatalf("flip %d (pack %s, byte %d of %d, bit %d) not detected", i, id.Str(), off, fi.Size(), bit)
		}
		flipBit(t, f.packFile(id), off, bit)
	}
	if rep := f.check(check.Options{ReadData: true}); !rep.OK() {
		t.Fatal("repository not clean after undoing the flips")
	}
}

// ReadProgress counts every pack read and its stored bytes, ending at the
// totals: the size of the data/ files.
func TestReadProgress(t *testing.T) {
	f := newFixture(t)
	var calls []check.ReadProgress
	rep := f.check(check.Options{ReadData: true, ReadProgress: func(p check.ReadProgress) { calls = append(calls, p) }})
	if !rep.OK() || len(calls) != rep.PacksRead {
		t.Fatalf("%d progress calls for %d packs read (ok %v)", len(calls), rep.PacksRead, rep.OK())
	}
	var stored uint64
	for id := range f.packs() {
		fi, err := os.Stat(f.packFile(id))
		if err != nil {
			t.Fatal(err)
		}
		stored += uint64(fi.Size())
	}
	last := calls[len(calls)-1]
	if last.PacksDone != rep.PacksRead || last.PacksTotal != rep.PacksRead || last.BytesDone != stored || last.BytesTotal != stored {
		t.Errorf("last progress %+v, want %d packs and %d bytes", last, rep.PacksRead, stored)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].PacksDone <= calls[i-1].PacksDone || calls[i].BytesDone <= calls[i-1].BytesDone {
			t.Errorf("progress went back: %+v after %+v", calls[i], calls[i-1])
		}
	}
}

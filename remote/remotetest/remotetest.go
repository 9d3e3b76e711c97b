// Package remotetest is the conformance suite every remote.Backend passes.
//
// A backend's tests call Run with a function that opens a fresh, empty
// repository for each subtest:
//
//	func TestConformance(t *testing.T) {
//		remotetest.Run(t, func(t *testing.T) remote.Backend { ... })
//	}
package remotetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/remote"
)

// Run runs the suite. open must return an empty repository that is closed
// and removed by the test's cleanups.
func Run(t *testing.T, open func(t *testing.T) remote.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b remote.Backend)
	}{
		{"Location", testLocation},
		{"SaveLoad", testSaveLoad},
		{"LoadRange", testLoadRange},
		{"LoadRangeBeyondEnd", testLoadRangeBeyondEnd},
		{"Stat", testStat},
		{"NotFound", testNotFound},
		{"ListTypes", testListTypes},
		{"ListEmpty", testListEmpty},
		{"ListManyPacks", testListManyPacks},
		{"ListStopsOnFnError", testListStopsOnFnError},
		{"Remove", testRemove},
		{"Resave", testResave},
		{"ConcurrentSave", testConcurrentSave},
		{"Large", testLarge},
		{"Cancelled", testCancelled},
		{"InvalidHandle", testInvalidHandle},
		{"ReleaseRecord", testReleaseRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

// randomData returns n random bytes and a name derived from them, as the
// repository names objects by content hash.
func randomData(n int) (string, []byte) {
	data := make([]byte, n)
	_, _ = rand.Read(data) // never fails since Go 1.24
	return nameOf(data), data
}

func nameOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func save(t testing.TB, b remote.Backend, h remote.Handle, data []byte) {
	t.Helper()
	if err := b.Save(context.Background(), h, data); err != nil {
		t.Fatalf("save %v: %v", h, err)
	}
}

func load(t testing.TB, b remote.Backend, h remote.Handle, offset, length int64) []byte {
	t.Helper()
	rd, err := b.Load(context.Background(), h, offset, length)
	if err != nil {
		t.Fatalf("load %v [%d, +%d]: %v", h, offset, length, err)
	}
	data, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("read %v [%d, +%d]: %v", h, offset, length, err)
	}
	if err := rd.Close(); err != nil {
		t.Fatalf("close %v: %v", h, err)
	}
	return data
}

// list returns name → size for every object of type ft.
func list(t testing.TB, b remote.Backend, ft remote.FileType) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := b.List(context.Background(), ft, func(fi remote.FileInfo) error {
		if _, dup := got[fi.Name]; dup {
			return fmt.Errorf("%s listed twice", fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("list %s: %v", ft, err)
	}
	return got
}

func testLocation(t *testing.T, b remote.Backend) {
	if b.Location() == "" {
		t.Error("Location is empty")
	}
}

func testSaveLoad(t *testing.T, b remote.Backend) {
	for _, size := range []int{0, 1, 100, 64 << 10, 1<<20 + 7} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			name, data := randomData(size)
			h := remote.Handle{Type: remote.PackFile, Name: name}
			save(t, b, h, data)
			if got := load(t, b, h, 0, 0); !bytes.Equal(got, data) {
				t.Fatalf("loaded %d bytes differ from the %d saved", len(got), len(data))
			}
			got, err := remote.LoadAll(context.Background(), b, h)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("LoadAll: %d bytes, %v", len(got), err)
			}
		})
	}
	// The config has no name.
	cfg := []byte("config data")
	save(t, b, remote.Handle{Type: remote.ConfigFile}, cfg)
	if got := load(t, b, remote.Handle{Type: remote.ConfigFile}, 0, 0); !bytes.Equal(got, cfg) {
		t.Fatalf("config: got %q", got)
	}
}

func testLoadRange(t *testing.T, b remote.Backend) {
	const size = 10_000
	name, data := randomData(size)
	h := remote.Handle{Type: remote.PackFile, Name: name}
	save(t, b, h, data)

	tests := []struct {
		name           string
		offset, length int64
	}{
		{"start", 0, 100},
		{"middle", 1234, 4321},
		{"end", size - 100, 100},
		{"last byte", size - 1, 1},
		{"whole by length", 0, size},
		{"offset to end", 5000, 0},
		{"last byte to end", size - 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := data[tt.offset:]
			if tt.length > 0 {
				want = want[:tt.length]
			}
			if got := load(t, b, h, tt.offset, tt.length); !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d (content differs or length)", len(got), len(want))
			}
		})
	}
}

// testLoadRangeBeyondEnd: a range past the end fails, at Load or at the
// latest when reading, but never yields a silent short read.
func testLoadRangeBeyondEnd(t *testing.T, b remote.Backend) {
	const size = 1000
	name, data := randomData(size)
	h := remote.Handle{Type: remote.PackFile, Name: name}
	save(t, b, h, data)

	tests := []struct {
		name           string
		offset, length int64
	}{
		{"length past end", size - 10, 20},
		{"offset at end", size, 1},
		{"offset at end to end", size, 0},
		{"offset past end", size + 10, 5},
		{"offset past end to end", size + 10, 0},
		{"negative offset", -1, 10},
		{"negative length", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rd, err := b.Load(context.Background(), h, tt.offset, tt.length)
			if err == nil {
				got, rerr := io.ReadAll(rd)
				_ = rd.Close()
				if rerr == nil {
					t.Fatalf("Load(%d, %d) returned %d bytes and no error", tt.offset, tt.length, len(got))
				}
				err = rerr
			}
			if remote.IsNotFound(err) {
				t.Fatalf("range error matches ErrNotFound: %v", err)
			}
			if !remote.IsPermanent(err) {
				t.Errorf("range error is retriable, want permanent: %v", err)
			}
		})
	}
}

func testStat(t *testing.T, b remote.Backend) {
	for _, ft := range []remote.FileType{remote.PackFile, remote.KeyFile, remote.LockFile, remote.SnapshotFile, remote.IndexFile, remote.ReleaseFile} {
		name, data := randomData(123)
		h := remote.Handle{Type: ft, Name: name}
		save(t, b, h, data)
		fi, err := b.Stat(context.Background(), h)
		if err != nil {
			t.Fatalf("stat %v: %v", h, err)
		}
		if fi.Name != name || fi.Size != 123 {
			t.Errorf("stat %v = %+v, want name %s size 123", h, fi, name)
		}
	}
	save(t, b, remote.Handle{Type: remote.ConfigFile}, []byte("cfg"))
	fi, err := b.Stat(context.Background(), remote.Handle{Type: remote.ConfigFile})
	if err != nil || fi.Size != 3 {
		t.Errorf("stat config = %+v, %v; want size 3", fi, err)
	}
}

func testNotFound(t *testing.T, b remote.Backend) {
	ctx := context.Background()
	handles := []remote.Handle{
		{Type: remote.PackFile, Name: nameOf([]byte("missing"))},
		{Type: remote.SnapshotFile, Name: nameOf([]byte("missing"))},
		{Type: remote.ConfigFile},
	}
	for _, h := range handles {
		if _, err := b.Stat(ctx, h); !remote.IsNotFound(err) {
			t.Errorf("stat missing %v: err %v, want ErrNotFound", h, err)
		}
		if rd, err := b.Load(ctx, h, 0, 0); !remote.IsNotFound(err) {
			if err == nil {
				rd.Close()
			}
			t.Errorf("load missing %v: err %v, want ErrNotFound", h, err)
		}
		if rd, err := b.Load(ctx, h, 10, 10); !remote.IsNotFound(err) {
			if err == nil {
				rd.Close()
			}
			t.Errorf("load range of missing %v: err %v, want ErrNotFound", h, err)
		}
		if err := b.Remove(ctx, h); !remote.IsNotFound(err) {
			t.Errorf("remove missing %v: err %v, want ErrNotFound", h, err)
		}
	}
}

func testListTypes(t *testing.T, b remote.Backend) {
	want := map[remote.FileType]map[string]int64{}
	for _, ft := range []remote.FileType{remote.PackFile, remote.KeyFile, remote.LockFile, remote.SnapshotFile, remote.IndexFile, remote.ReleaseFile} {
		want[ft] = map[string]int64{}
		for i := range 5 {
			name, data := randomData(10 + i)
			save(t, b, remote.Handle{Type: ft, Name: name}, data)
			want[ft][name] = int64(len(data))
		}
	}
	save(t, b, remote.Handle{Type: remote.ConfigFile}, []byte("cfg"))
	want[remote.ConfigFile] = map[string]int64{"": 3}

	for ft, w := range want {
		if got := list(t, b, ft); !maps.Equal(got, w) {
			t.Errorf("list %s:\n got %v\nwant %v", ft, got, w)
		}
	}
}

func testListEmpty(t *testing.T, b remote.Backend) {
	for _, ft := range remote.FileTypes {
		if got := list(t, b, ft); len(got) != 0 {
			t.Errorf("list %s of an empty repository: %v", ft, got)
		}
	}
}

// testListManyPacks saves more than 1000 packs, more than one page of an
// S3 listing, spread over the data/XX folders.
func testListManyPacks(t *testing.T, b remote.Backend) {
	const n = 1100
	want := make(map[string]int64, n)
	names := make([]string, n)
	for i := range names {
		names[i] = nameOf(fmt.Appendf(nil, "pack %d", i))
		want[names[i]] = int64(i % 7)
	}
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(16)
	for i, name := range names {
		g.Go(func() error {
			return b.Save(ctx, remote.Handle{Type: remote.PackFile, Name: name}, make([]byte, i%7))
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	got := list(t, b, remote.PackFile)
	if len(got) != n {
		t.Fatalf("listed %d packs, want %d", len(got), n)
	}
	if !maps.Equal(got, want) {
		t.Fatal("listed packs differ from the saved ones")
	}
	folders := map[string]bool{}
	for name := range got {
		folders[name[:2]] = true
	}
	if len(folders) < 200 {
		t.Errorf("packs landed in only %d data/XX folders", len(folders))
	}
	// Other types stay empty.
	if got := list(t, b, remote.IndexFile); len(got) != 0 {
		t.Errorf("index listing shows %d objects", len(got))
	}
}

func testListStopsOnFnError(t *testing.T, b remote.Backend) {
	for i := range 5 {
		save(t, b, remote.Handle{Type: remote.SnapshotFile, Name: nameOf([]byte{byte(i)})}, []byte{byte(i)})
	}
	stop := errors.New("stop")
	calls := 0
	err := b.List(context.Background(), remote.SnapshotFile, func(remote.FileInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List returned %v, want fn's error", err)
	}
	if calls != 1 {
		t.Errorf("fn called %d times after returning an error, want 1", calls)
	}
}

func testRemove(t *testing.T, b remote.Backend) {
	ctx := context.Background()
	name, data := randomData(50)
	h := remote.Handle{Type: remote.LockFile, Name: name}
	keep := remote.Handle{Type: remote.LockFile, Name: nameOf([]byte("keep"))}
	save(t, b, h, data)
	save(t, b, keep, []byte("keep"))
	if err := b.Remove(ctx, h); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := b.Stat(ctx, h); !remote.IsNotFound(err) {
		t.Errorf("stat after remove: %v, want ErrNotFound", err)
	}
	if got := list(t, b, remote.LockFile); !maps.Equal(got, map[string]int64{keep.Name: 4}) {
		t.Errorf("after remove, locks are %v", got)
	}
	if err := b.Remove(ctx, h); !remote.IsNotFound(err) {
		t.Errorf("second remove: %v, want ErrNotFound", err)
	}
	// A removed pack can be saved again.
	save(t, b, h, data)
	if got := load(t, b, h, 0, 0); !bytes.Equal(got, data) {
		t.Error("object saved after removal differs")
	}
}

func testResave(t *testing.T, b remote.Backend) {
	name, data := randomData(1000)
	h := remote.Handle{Type: remote.IndexFile, Name: name}
	save(t, b, h, data)
	save(t, b, h, data)
	if got := load(t, b, h, 0, 0); !bytes.Equal(got, data) {
		t.Error("object differs after saving it twice")
	}
	if got := list(t, b, remote.IndexFile); len(got) != 1 {
		t.Errorf("listed %d index files after saving one twice", len(got))
	}
}

func testConcurrentSave(t *testing.T, b remote.Backend) {
	const workers, each = 8, 10
	var mu sync.Mutex
	want := map[string][]byte{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				name, data := randomData(4096)
				if err := b.Save(context.Background(), remote.Handle{Type: remote.PackFile, Name: name}, data); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want[name] = data
				mu.Unlock()
			}
		})
	}
	// Everyone writes the same object at once too.
	shared := []byte("shared object")
	sh := remote.Handle{Type: remote.PackFile, Name: nameOf(shared)}
	for range workers {
		wg.Go(func() {
			if err := b.Save(context.Background(), sh, shared); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent save: %v", err)
	}
	want[sh.Name] = shared

	got := list(t, b, remote.PackFile)
	if len(got) != len(want) {
		t.Fatalf("listed %d packs, want %d", len(got), len(want))
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if data := load(t, b, remote.Handle{Type: remote.PackFile, Name: name}, 0, 0); !bytes.Equal(data, want[name]) {
			t.Errorf("pack %s differs", name[:8])
		}
	}
}

func testLarge(t *testing.T, b remote.Backend) {
	const size = 20 << 20
	name, data := randomData(size)
	h := remote.Handle{Type: remote.PackFile, Name: name}
	save(t, b, h, data)
	fi, err := b.Stat(context.Background(), h)
	if err != nil || fi.Size != size {
		t.Fatalf("stat = %+v, %v; want size %d", fi, err, size)
	}
	if got := load(t, b, h, 0, 0); !bytes.Equal(got, data) {
		t.Fatal("20 MiB object differs")
	}
	if got := load(t, b, h, size-(1<<20), 1<<20); !bytes.Equal(got, data[size-(1<<20):]) {
		t.Fatal("last MiB differs")
	}
}

func testCancelled(t *testing.T, b remote.Backend) {
	name, data := randomData(100)
	h := remote.Handle{Type: remote.PackFile, Name: name}
	save(t, b, h, data)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want context.Canceled", op, err)
		}
	}
	other := remote.Handle{Type: remote.PackFile, Name: nameOf([]byte("other"))}
	check("save", b.Save(ctx, other, []byte("other")))
	rd, err := b.Load(ctx, h, 0, 0)
	if err == nil {
		_, err = io.ReadAll(rd)
		rd.Close()
	}
	check("load", err)
	_, err = b.Stat(ctx, h)
	check("stat", err)
	check("list", b.List(ctx, remote.PackFile, func(remote.FileInfo) error { return nil }))
	check("remove", b.Remove(ctx, h))

	// Nothing happened.
	if _, err := b.Stat(context.Background(), other); !remote.IsNotFound(err) {
		t.Errorf("object saved with a cancelled context exists: %v", err)
	}
	if _, err := b.Stat(context.Background(), h); err != nil {
		t.Errorf("object removed with a cancelled context: %v", err)
	}

	// Cancelling in the middle of a listing ends it with an error.
	for i := range 3 {
		save(t, b, remote.Handle{Type: remote.KeyFile, Name: nameOf([]byte{byte(i)})}, []byte{1})
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	err = b.List(ctx, remote.KeyFile, func(remote.FileInfo) error {
		cancel()
		return nil
	})
	check("list cancelled midway", err)
}

func testInvalidHandle(t *testing.T, b remote.Backend) {
	ctx := context.Background()
	for _, h := range []remote.Handle{
		{Type: "bogus", Name: "abcd"},
		{Type: remote.PackFile, Name: ""},
		{Type: remote.SnapshotFile, Name: "../config"},
		{Type: remote.KeyFile, Name: "a/b"},
		{Type: remote.IndexFile, Name: ".hidden"},
		{Type: remote.PackFile, Name: "a"}, // too short for data/XX
	} {
		// Permanent, so that no retry wrapper spends its budget on them.
		if err := b.Save(ctx, h, []byte("x")); !errors.Is(err, remote.ErrPermanent) {
			t.Errorf("save %#v: %v, want ErrPermanent", h, err)
		}
		if _, err := b.Stat(ctx, h); !errors.Is(err, remote.ErrPermanent) || remote.IsNotFound(err) {
			t.Errorf("stat %#v: %v, want ErrPermanent", h, err)
		}
	}
	if err := b.List(ctx, "bogus", func(remote.FileInfo) error { return nil }); !errors.Is(err, remote.ErrPermanent) {
		t.Errorf("list of an invalid type: %v, want ErrPermanent", err)
	}
}

// testReleaseRecord: the empty objects in escrow/released/ that release
// locks are saved, listed apart from the lock files, and removed.
func testReleaseRecord(t *testing.T, b remote.Backend) {
	ctx := context.Background()
	name := nameOf([]byte("a lock"))
	save(t, b, remote.Handle{Type: remote.LockFile, Name: name}, []byte("lock"))
	h := remote.Handle{Type: remote.ReleaseFile, Name: name}
	save(t, b, h, nil)
	if got := list(t, b, remote.ReleaseFile); !maps.Equal(got, map[string]int64{name: 0}) {
		t.Errorf("release records: %v", got)
	}
	if got := list(t, b, remote.LockFile); !maps.Equal(got, map[string]int64{name: 4}) {
		t.Errorf("lock files: %v", got)
	}
	if err := b.Remove(ctx, h); err != nil {
		t.Fatal(err)
	}
	if got := list(t, b, remote.ReleaseFile); len(got) != 0 {
		t.Errorf("release records after remove: %v", got)
	}
}

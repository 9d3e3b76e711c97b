package repo

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// randomID returns an ID drawn from rng: blob IDs are SHA-256 hashes, so
// uniformly spread, as these are.
func randomID(rng *rand.Rand) ID {
	var id ID
	for i := 0; i < IDSize; i += 8 {
		binary.LittleEndian.PutUint64(id[i:], rng.Uint64())
	}
	return id
}

// randomPacks returns packs of random blobs, perPack blobs each, about one
// in twenty of them a tree blob.
func randomPacks(rng *rand.Rand, packs, perPack int) []IndexPack {
	out := make([]IndexPack, packs)
	for p := range out {
		out[p].ID = randomID(rng)
		off := uint32(0)
		for range perPack {
			pb := PackedBlob{BlobHandle: BlobHandle{ID: randomID(rng), Type: DataBlob}, PackID: out[p].ID,
				Offset: off, Length: overhead + rng.Uint32N(1<<20)}
			if rng.IntN(20) == 0 {
				pb.Type = TreeBlob
			}
			if rng.IntN(2) == 0 {
				pb.UncompressedLength = pb.Length + rng.Uint32N(1<<20)
			}
			off += pb.Length
			out[p].Blobs = append(out[p].Blobs, pb)
		}
	}
	return out
}

// mapIndex is the index as it was before the compact one: a map from
// handle to location. The reference the tests compare against, and the
// baseline of the benchmark.
type mapIndex struct {
	packs   []ID
	packPos map[ID]uint32
	blobs   map[BlobHandle]mapLocation
}

type mapLocation struct{ pack, offset, length, uncompressedLength uint32 }

func newMapIndex() *mapIndex {
	return &mapIndex{packPos: map[ID]uint32{}, blobs: map[BlobHandle]mapLocation{}}
}

func (m *mapIndex) AddPack(packID ID, blobs []PackedBlob) {
	pos, ok := m.packPos[packID]
	if !ok {
		pos = uint32(len(m.packs))
		m.packs = append(m.packs, packID)
		m.packPos[packID] = pos
	}
	for _, b := range blobs {
		if _, known := m.blobs[b.BlobHandle]; !known {
			m.blobs[b.BlobHandle] = mapLocation{pos, b.Offset, b.Length, b.UncompressedLength}
		}
	}
}

func (m *mapIndex) Lookup(h BlobHandle) (PackedBlob, bool) {
	loc, ok := m.blobs[h]
	if !ok {
		return PackedBlob{}, false
	}
	return PackedBlob{BlobHandle: h, PackID: m.packs[loc.pack], Offset: loc.offset, Length: loc.length, UncompressedLength: loc.uncompressedLength}, true
}

// checkAgainst compares idx with the reference: the same blobs, each at the
// same location, and nothing more.
func checkAgainst(t *testing.T, idx *Index, ref *mapIndex) {
	t.Helper()
	if idx.Len() != len(ref.blobs) {
		t.Fatalf("Len = %d, want %d", idx.Len(), len(ref.blobs))
	}
	for h := range ref.blobs {
		want, _ := ref.Lookup(h)
		got, ok := idx.Lookup(h)
		if !ok || got != want {
			t.Fatalf("Lookup(%v) = %+v, %v; want %+v", h, got, ok, want)
		}
		if !idx.Has(h) {
			t.Fatalf("Has(%v) = false after Lookup found it", h)
		}
	}
	seen := 0
	var prev BlobHandle
	idx.Each(func(pb PackedBlob) {
		want, ok := ref.Lookup(pb.BlobHandle)
		if !ok || pb != want {
			t.Fatalf("Each gave %+v; the reference has %+v, %v", pb, want, ok)
		}
		if seen > 0 && !handleLess(prev, pb.BlobHandle) {
			t.Fatalf("Each gave %v after %v: not in order, or twice", pb.BlobHandle, prev)
		}
		prev = pb.BlobHandle
		seen++
	})
	if seen != len(ref.blobs) {
		t.Fatalf("Each visited %d blobs, want %d", seen, len(ref.blobs))
	}
}

func handleLess(a, b BlobHandle) bool {
	for i := range a.ID {
		if a.ID[i] != b.ID[i] {
			return a.ID[i] < b.ID[i]
		}
	}
	return a.Type < b.Type
}

func TestIndexFindsEveryBlob(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// Enough blobs for the buckets to split ten times over.
	packs := randomPacks(rng, 200, 400)
	idx, ref := NewIndex(), newMapIndex()
	for i, p := range packs {
		idx.AddPack(p.ID, p.Blobs)
		ref.AddPack(p.ID, p.Blobs)
		if i == 0 || i == 3 || i == len(packs)-1 {
			checkAgainst(t, idx, ref) // before, across and after splits
		}
	}
	if idx.bits < 10 {
		t.Fatalf("%d blobs in %d buckets: the buckets did not split", idx.Len(), len(idx.buckets))
	}
	for i := range 10000 {
		h := BlobHandle{ID: randomID(rng), Type: DataBlob}
		if i%2 == 1 {
			h.Type = TreeBlob
		}
		if _, ok := idx.Lookup(h); ok || idx.Has(h) {
			t.Fatalf("absent blob %v found", h)
		}
	}
	// A known ID under the other type, or under no valid type, is absent.
	for _, b := range packs[7].Blobs[:50] {
		other := BlobHandle{ID: b.ID, Type: TreeBlob + DataBlob - b.Type}
		if idx.Has(other) || idx.Has(BlobHandle{ID: b.ID, Type: InvalidBlob}) || idx.Has(BlobHandle{ID: b.ID, Type: 7}) {
			t.Fatalf("blob %v found under another type", b.BlobHandle)
		}
	}
	sizes := idx.Packs()
	if len(sizes) != len(packs) {
		t.Fatalf("Packs lists %d packs, want %d", len(sizes), len(packs))
	}
	for _, p := range packs {
		if sizes[p.ID] != PackSize(p.Blobs) || idx.PackSize(p.ID) != PackSize(p.Blobs) {
			t.Fatalf("pack %s: size %d and %d, want %d", p.ID.Str(), sizes[p.ID], idx.PackSize(p.ID), PackSize(p.Blobs))
		}
	}
	if idx.PackSize(randomID(rng)) != 0 {
		t.Fatal("an unknown pack has a size")
	}
}

func TestIndexFirstLocationWins(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	packs := randomPacks(rng, 6, 300)
	idx, ref := NewIndex(), newMapIndex()
	add := func(id ID, blobs []PackedBlob) {
		idx.AddPack(id, blobs)
		ref.AddPack(id, blobs)
	}
	for _, p := range packs[:3] {
		add(p.ID, p.Blobs)
	}
	// A later pack holding copies of known blobs (a repack, or two backups
	// that raced): the known ones keep their first location, the new ones
	// are added.
	again := append([]PackedBlob(nil), packs[3].Blobs...)
	for i, b := range packs[0].Blobs[:100] {
		b.PackID, b.Offset = packs[3].ID, uint32(i)
		again = append(again, b)
	}
	add(packs[3].ID, again)
	// The same ID as data and as tree blob: two blobs.
	tree := packs[1].Blobs[5]
	tree.Type = TreeBlob + DataBlob - tree.Type
	tree.PackID = packs[4].ID
	add(packs[4].ID, append([]PackedBlob{tree}, packs[4].Blobs...))
	// A pack listed twice (overlapping index files) is one pack, with the
	// size its first listing gives.
	add(packs[0].ID, packs[5].Blobs[:10])
	checkAgainst(t, idx, ref)
	if got, want := idx.Len(), 6*300-290+1; got != want {
		t.Fatalf("Len = %d, want %d", got, want)
	}
	if len(idx.Packs()) != 5 || idx.PackSize(packs[0].ID) != PackSize(packs[0].Blobs) {
		t.Fatalf("packs %d (want 5), size of the pack listed twice %d (want %d)", len(idx.Packs()), idx.PackSize(packs[0].ID), PackSize(packs[0].Blobs))
	}
	pb, _ := idx.Lookup(packs[0].Blobs[0].BlobHandle)
	if pb != packs[0].Blobs[0] {
		t.Fatalf("duplicate blob at %+v, want its first location %+v", pb, packs[0].Blobs[0])
	}
	pb, _ = idx.Lookup(packs[5].Blobs[3].BlobHandle)
	if pb.PackID != packs[0].ID {
		t.Fatalf("blob of the pack listed twice in pack %s, want %s", pb.PackID.Str(), packs[0].ID.Str())
	}
}

func TestIndexAddsAfterLoad(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	loaded := randomPacks(rng, 40, 250)
	var f indexJSON
	for _, p := range loaded {
		ip := indexPackJSON{ID: p.ID}
		for _, b := range p.Blobs {
			ip.Blobs = append(ip.Blobs, indexBlobJSON{ID: b.ID, Type: b.Type, Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength})
		}
		f.Packs = append(f.Packs, ip)
	}
	idx, ref := NewIndex(), newMapIndex()
	if err := idx.addIndexFile(&f); err != nil {
		t.Fatal(err)
	}
	for _, p := range loaded {
		ref.AddPack(p.ID, p.Blobs)
	}
	checkAgainst(t, idx, ref)
	// A backup then adds its packs, some blobs of which the index had.
	for _, p := range randomPacks(rng, 20, 100) {
		p.Blobs = append(p.Blobs, loaded[rng.IntN(len(loaded))].Blobs[:3]...)
		idx.AddPack(p.ID, p.Blobs)
		ref.AddPack(p.ID, p.Blobs)
	}
	checkAgainst(t, idx, ref)

	idx.reset()
	if idx.Len() != 0 || len(idx.Packs()) != 0 || idx.Has(loaded[0].Blobs[0].BlobHandle) {
		t.Fatalf("after reset: %d blobs, %d packs", idx.Len(), len(idx.Packs()))
	}
	p := randomPacks(rng, 1, 10)[0]
	idx.AddPack(p.ID, p.Blobs)
	ref = newMapIndex()
	ref.AddPack(p.ID, p.Blobs)
	checkAgainst(t, idx, ref)
}

// TestIndexConcurrentReaders runs lookups while packs are added and the
// buckets split; under -race it checks the locking.
func TestIndexConcurrentReaders(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	packs := randomPacks(rng, 60, 200)
	idx := NewIndex()
	idx.AddPack(packs[0].ID, packs[0].Blobs)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				// The first pack is there all along, at its location.
				b := packs[0].Blobs[(n*7+r)%len(packs[0].Blobs)]
				if pb, ok := idx.Lookup(b.BlobHandle); !ok || pb != b {
					t.Errorf("Lookup(%v) = %+v, %v; want %+v", b.BlobHandle, pb, ok, b)
					return
				}
				if r == 0 && n%50 == 0 {
					idx.Each(func(PackedBlob) {})
					_ = idx.Packs()
				}
				_ = idx.Len()
			}
		}()
	}
	for _, p := range packs[1:] {
		idx.AddPack(p.ID, p.Blobs)
	}
	close(stop)
	wg.Wait()
	if idx.Len() != 60*200 {
		t.Fatalf("Len = %d, want %d", idx.Len(), 60*200)
	}
}

// BenchmarkIndex compares the compact index with the map it replaced, on a
// million blobs (a million-file tree gives about 1.1 million): heap bytes
// per blob, insertions per second and lookups per second (half of them of
// absent blobs, as deduplication mostly asks about new chunks).
func BenchmarkIndex(b *testing.B) {
	const blobs = 1_000_000
	rng := rand.New(rand.NewPCG(9, 10))
	packs := randomPacks(rng, blobs/1000, 1000)
	probes := make([]BlobHandle, 1<<16)
	for i := range probes {
		if i%2 == 0 {
			probes[i] = packs[rng.IntN(len(packs))].Blobs[rng.IntN(1000)].BlobHandle
		} else {
			probes[i] = BlobHandle{ID: randomID(rng), Type: DataBlob}
		}
	}
	type index interface {
		AddPack(ID, []PackedBlob)
		Lookup(BlobHandle) (PackedBlob, bool)
	}
	for _, impl := range []struct {
		name string
		new  func() index
	}{
		{"compact", func() index { return NewIndex() }},
		{"map", func() index { return newMapIndex() }},
	} {
		b.Run(impl.name, func(b *testing.B) {
			heap := func() uint64 {
				var ms runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&ms)
				return ms.HeapAlloc
			}
			before := heap()
			start := time.Now()
			idx := impl.new()
			for _, p := range packs {
				idx.AddPack(p.ID, p.Blobs)
			}
			took := time.Since(start)
			size := heap() - before
			found, n := 0, 0
			start = time.Now()
			for b.Loop() {
				if _, ok := idx.Lookup(probes[n&(len(probes)-1)]); ok {
					found++
				}
				n++
			}
			lookups := time.Since(start)
			if found < n/3 {
				b.Fatalf("%d of %d lookups found their blob, want about half", found, n)
			}
			b.ReportMetric(float64(size)/blobs, "bytes/blob")
			b.ReportMetric(blobs/took.Seconds(), "adds/s")
			b.ReportMetric(float64(n)/lookups.Seconds(), "lookups/s")
			runtime.KeepAlive(idx)
		})
	}
}

// TestIndexSearch checks search on its own, with buckets of every size the
// index makes and larger ones (which it binary-searches): each entry is
// found where it is, and an absent blob's position keeps the bucket sorted.
func TestIndexSearch(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 2, 5, 40, 64, 130, 4*bucketSplit + 1, 2000} {
		for _, bits := range []uint{0, 3, 12} {
			// A bucket is the IDs that share their first bits bits.
			prefix := randomID(rng)
			b := make([]indexEntry, n)
			for i := range b {
				id := randomID(rng)
				if bits > 0 {
					p, v := binary.BigEndian.Uint32(prefix[:4]), binary.BigEndian.Uint32(id[:4])
					mask := uint32(1)<<(32-bits) - 1
					binary.BigEndian.PutUint32(id[:4], p&^mask|v&mask)
				}
				b[i] = indexEntry{id: id}
				if rng.IntN(3) == 0 {
					b[i].pack = treeBit
				}
			}
			slices.SortFunc(b, func(x, y indexEntry) int {
				return compareEntry(&x, binary.BigEndian.Uint64(y.id[:8]), &y.id, y.pack&treeBit)
			})
			for i := range b {
				if got, ok := search(b, bits, &b[i].id, entryType(&b[i])); !ok || got != i {
					t.Fatalf("n=%d bits=%d: entry %d found at %d, %v", n, bits, i, got, ok)
				}
			}
			for range 200 {
				probe := indexEntry{id: randomID(rng)}
				if n > 0 && rng.IntN(2) == 0 {
					probe.id = b[rng.IntN(n)].id // same ID, maybe the other type
					probe.pack = treeBit
				}
				got, ok := search(b, bits, &probe.id, entryType(&probe))
				want := sort.Search(n, func(i int) bool {
					return compareEntry(&b[i], binary.BigEndian.Uint64(probe.id[:8]), &probe.id, probe.pack) >= 0
				})
				if got != want || ok != (want < n && b[want].id == probe.id && b[want].pack == probe.pack) {
					t.Fatalf("n=%d bits=%d: search = %d, %v; want %d", n, bits, got, ok, want)
				}
			}
		}
	}
}

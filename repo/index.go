package repo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
	"sync"
)

// indexJSON is an index file: which blobs live in which packs. Index files
// may overlap; together they form the master index.
type indexJSON struct {
	Supersedes []ID            `json:"supersedes,omitempty"`
	Packs      []indexPackJSON `json:"packs"`
}

type indexPackJSON struct {
	ID    ID              `json:"id"`
	Blobs []indexBlobJSON `json:"blobs"`
}

type indexBlobJSON struct {
	ID                 ID       `json:"id"`
	Type               BlobType `json:"type"`
	Offset             uint32   `json:"offset"`
	Length             uint32   `json:"length"`
	UncompressedLength uint32   `json:"uncompressed_length,omitempty"`
}

// maxIndexBlobs bounds the blobs one index file lists. Encoding a file
// holds its JSON two or three times over (the encoder's growing buffer, the
// copy it returns, the compressed and the sealed bytes), and loading one
// holds it decoded beside its text, for several files at once: at 50,000
// blobs (restic's own bound, 7.5 MB of JSON) that was 28 MB of a backup's
// peak heap at 300,000 files. At 16,384 it is a third of that, for three
// times as many, still small, index files.
const maxIndexBlobs = 16384

// indexEntry is where one blob lives: 48 bytes, with no pointer, so that
// the index of a million-file repository stays near 50 MB and costs the
// garbage collector nothing to scan. The blob's type lives in the top bit
// of pack.
type indexEntry struct {
	id                 ID
	pack               uint32 // position in Index.packs, treeBit set for a tree blob
	offset             uint32
	length             uint32
	uncompressedLength uint32
}

// treeBit marks a tree blob in indexEntry.pack; data blobs leave it clear.
const treeBit = 1 << 31

// The entries live in buckets chosen by the first bits of the blob's ID
// (IDs are SHA-256 hashes: uniformly spread), each bucket sorted by ID and
// type. When the buckets hold bucketSplit entries on average, each is cut
// in two by the next bit of the ID: a lookup searches a few dozen entries
// (see search), an insertion moves about a kilobyte, and no step ever
// copies the whole index at once (a merge of one large sorted array would hold two
// copies of it while it runs, and append's doubling leaves up to half of
// the array unused).
const (
	bucketSplit    = 64
	maxBucketBits  = 24
	bucketGrowthBy = 8 // a full bucket grows by 1/bucketGrowthBy of its length
)

// Index maps blobs to their packs. It is safe for concurrent use.
type Index struct {
	mu       sync.RWMutex
	packs    []ID
	packPos  map[ID]uint32
	packSize []int64 // expected size of each pack, from its blobs; by position
	bits     uint    // buckets are chosen by the first bits of the ID
	buckets  [][]indexEntry
	n        int
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{packPos: map[ID]uint32{}, buckets: make([][]indexEntry, 1)}
}

// reset forgets every pack and blob.
func (idx *Index) reset() {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.packs, idx.packSize = nil, nil
	idx.packPos = map[ID]uint32{}
	idx.bits, idx.buckets, idx.n = 0, make([][]indexEntry, 1), 0
}

// entryType returns the type of the blob of entry e.
func entryType(e *indexEntry) BlobType {
	if e.pack&treeBit != 0 {
		return TreeBlob
	}
	return DataBlob
}

// bucketOf returns the bucket blob ID id belongs to.
func (idx *Index) bucketOf(id *ID) int {
	if idx.bits == 0 {
		return 0
	}
	return int(binary.BigEndian.Uint32(id[:4]) >> (32 - idx.bits))
}

// compareEntry orders entry e against the blob whose ID is id, with k the
// first 8 bytes of id and bit its type bit: by ID, then by type.
func compareEntry(e *indexEntry, k uint64, id *ID, bit uint32) int {
	if ek := binary.BigEndian.Uint64(e.id[:8]); ek != k {
		if ek < k {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(e.id[8:], id[8:]); c != 0 {
		return c
	}
	return int(e.pack&treeBit>>31) - int(bit>>31)
}

// search returns the position of (id, typ) in bucket b, or where it would
// go, and whether it is there. The bucket's IDs share their first bits
// bits and are uniformly spread after them, so the position the next bits
// give is within a few entries of the right one: the search starts there
// and walks, touching one or two cache lines where a binary search would
// touch six. Buckets much larger than the split size (the index has
// stopped splitting) are binary-searched.
func search(b []indexEntry, bits uint, id *ID, typ BlobType) (int, bool) {
	var bit uint32
	if typ == TreeBlob {
		bit = treeBit
	}
	k := binary.BigEndian.Uint64(id[:8])
	n := len(b)
	if n > 4*bucketSplit {
		i := sort.Search(n, func(i int) bool { return compareEntry(&b[i], k, id, bit) >= 0 })
		return i, i < n && compareEntry(&b[i], k, id, bit) == 0
	}
	if n == 0 {
		return 0, false
	}
	i := int(((k << bits) >> 32) * uint64(n) >> 32)
	c := compareEntry(&b[i], k, id, bit)
	switch {
	case c == 0:
		return i, true
	case c < 0:
		for i++; i < n; i++ {
			if c = compareEntry(&b[i], k, id, bit); c >= 0 {
				return i, c == 0
			}
		}
		return n, false
	default:
		for ; i > 0; i-- {
			if c = compareEntry(&b[i-1], k, id, bit); c <= 0 {
				if c == 0 {
					return i - 1, true
				}
				return i, false
			}
		}
		return 0, false
	}
}

// find returns the entry of blob h, or nil.
func (idx *Index) find(h BlobHandle) *indexEntry {
	if h.Type != DataBlob && h.Type != TreeBlob {
		return nil
	}
	b := idx.buckets[idx.bucketOf(&h.ID)]
	if i, ok := search(b, idx.bits, &h.ID, h.Type); ok {
		return &b[i]
	}
	return nil
}

// insert adds e to its bucket unless the blob is there already: the first
// location wins.
func (idx *Index) insert(e indexEntry) {
	k := idx.bucketOf(&e.id)
	b := idx.buckets[k]
	i, found := search(b, idx.bits, &e.id, entryType(&e))
	if found {
		return
	}
	if len(b) == cap(b) {
		// Grow by an eighth, not append's doubling: buckets are many and
		// long-lived, and doubling would leave a quarter of the index
		// unused on average.
		nb := slices.Grow([]indexEntry(nil), len(b)+len(b)/bucketGrowthBy+1)
		b = append(nb, b...)
	}
	b = b[:len(b)+1]
	copy(b[i+1:], b[i:])
	b[i] = e
	idx.buckets[k] = b
	idx.n++
	if idx.n > bucketSplit<<idx.bits && idx.bits < maxBucketBits {
		idx.split()
	}
}

// split doubles the number of buckets, cutting each sorted bucket in two by
// the next bit of the ID. One bucket at a time is copied, so the live heap
// grows by one bucket, not by the index.
func (idx *Index) split() {
	next := make([][]indexEntry, 2*len(idx.buckets))
	shift := 31 - idx.bits // the bit that picks the lower or upper half
	for k, b := range idx.buckets {
		cut := sort.Search(len(b), func(i int) bool {
			return binary.BigEndian.Uint32(b[i].id[:4])>>shift&1 == 1
		})
		next[2*k] = cloneBucket(b[:cut])
		next[2*k+1] = cloneBucket(b[cut:])
		idx.buckets[k] = nil
	}
	idx.buckets = next
	idx.bits++
}

// cloneBucket copies b with room for a few more entries.
func cloneBucket(b []indexEntry) []indexEntry {
	if len(b) == 0 {
		return nil
	}
	return append(slices.Grow([]indexEntry(nil), len(b)+len(b)/bucketGrowthBy+1), b...)
}

// packed returns the PackedBlob of entry e.
func (idx *Index) packed(e *indexEntry) PackedBlob {
	return PackedBlob{
		BlobHandle: BlobHandle{ID: e.id, Type: entryType(e)}, PackID: idx.packs[e.pack&^treeBit],
		Offset: e.offset, Length: e.length, UncompressedLength: e.uncompressedLength,
	}
}

// AddPack records the blobs of one pack. Blobs already known elsewhere keep
// their first location; packs listed twice (overlapping index files) are
// merged. Every blob must be a data or a tree blob (addIndexFile checks
// what it reads; the writer only writes those).
func (idx *Index) AddPack(packID ID, blobs []PackedBlob) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	pos, ok := idx.packPos[packID]
	if !ok {
		pos = uint32(len(idx.packs))
		if pos >= treeBit {
			panic("repo: more than 2^31 packs in the index")
		}
		idx.packs = append(idx.packs, packID)
		idx.packPos[packID] = pos
		idx.packSize = append(idx.packSize, PackSize(blobs))
	}
	for _, b := range blobs {
		e := indexEntry{id: b.ID, pack: pos, offset: b.Offset, length: b.Length, uncompressedLength: b.UncompressedLength}
		switch b.Type {
		case DataBlob:
		case TreeBlob:
			e.pack |= treeBit
		default:
			panic(fmt.Sprintf("repo: blob %s of pack %s has type %d, neither data nor tree", b.ID.Str(), packID.Str(), b.Type))
		}
		idx.insert(e)
	}
}

// Lookup returns where blob h is stored.
func (idx *Index) Lookup(h BlobHandle) (PackedBlob, bool) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	e := idx.find(h)
	if e == nil {
		return PackedBlob{}, false
	}
	return idx.packed(e), true
}

// Has reports whether blob h is indexed.
func (idx *Index) Has(h BlobHandle) bool {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return idx.find(h) != nil
}

// Len returns the number of blobs.
func (idx *Index) Len() int {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return idx.n
}

// Packs returns every indexed pack with the size it must have.
func (idx *Index) Packs() map[ID]int64 {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	out := make(map[ID]int64, len(idx.packs))
	for pos, id := range idx.packs {
		out[id] = idx.packSize[pos]
	}
	return out
}

// PackSize returns the size pack id must have, or 0 if it is not indexed.
func (idx *Index) PackSize(id ID) int64 {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	pos, ok := idx.packPos[id]
	if !ok {
		return 0
	}
	return idx.packSize[pos]
}

// Each calls fn for every indexed blob, in the order of their IDs; fn must
// not call back into idx.
func (idx *Index) Each(fn func(PackedBlob)) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	for _, b := range idx.buckets {
		for i := range b {
			fn(idx.packed(&b[i]))
		}
	}
}

// addIndexFile merges a decoded index file, validating it first.
func (idx *Index) addIndexFile(f *indexJSON) error {
	for _, p := range f.Packs {
		blobs := make([]PackedBlob, 0, len(p.Blobs))
		for _, b := range p.Blobs {
			if b.Type != DataBlob && b.Type != TreeBlob {
				return fmt.Errorf("pack %s: blob %s has no valid type", p.ID.Str(), b.ID.Str())
			}
			if b.Length < overhead || b.Length > maxBlobSize {
				return fmt.Errorf("pack %s: blob %s has invalid length %d", p.ID.Str(), b.ID.Str(), b.Length)
			}
			// OpenBlob allocates the uncompressed length up front; the
			// decoder never returns more than maxUnpackedSize anyway.
			if b.UncompressedLength > maxUnpackedSize {
				return fmt.Errorf("pack %s: blob %s has invalid uncompressed length %d", p.ID.Str(), b.ID.Str(), b.UncompressedLength)
			}
			blobs = append(blobs, PackedBlob{
				BlobHandle: BlobHandle{ID: b.ID, Type: b.Type}, PackID: p.ID,
				Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength,
			})
		}
		idx.AddPack(p.ID, blobs)
	}
	return nil
}

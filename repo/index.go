package repo

import (
	"fmt"
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

// maxIndexBlobs keeps each index file well below restic's 8 MiB guideline.
const maxIndexBlobs = 50000

// location is where one blob lives. Kept small: the index holds one per blob
// in the repository, and memory must stay modest on a small server.
type location struct {
	pack               uint32 // position in Index.packs
	offset             uint32
	length             uint32
	uncompressedLength uint32
}

// Index maps blobs to their packs. It is safe for concurrent use.
type Index struct {
	mu       sync.RWMutex
	packs    []ID
	packPos  map[ID]uint32
	blobs    map[BlobHandle]location
	packSize map[ID]int64 // expected size of each pack, from its blobs
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{packPos: map[ID]uint32{}, blobs: map[BlobHandle]location{}, packSize: map[ID]int64{}}
}

// reset forgets every pack and blob.
func (idx *Index) reset() {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.packs = nil
	idx.packPos, idx.blobs, idx.packSize = map[ID]uint32{}, map[BlobHandle]location{}, map[ID]int64{}
}

// AddPack records the blobs of one pack. Blobs already known elsewhere keep
// their first location; packs listed twice (overlapping index files) are
// merged.
func (idx *Index) AddPack(packID ID, blobs []PackedBlob) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	pos, ok := idx.packPos[packID]
	if !ok {
		pos = uint32(len(idx.packs))
		idx.packs = append(idx.packs, packID)
		idx.packPos[packID] = pos
		idx.packSize[packID] = PackSize(blobs)
	}
	for _, b := range blobs {
		if _, known := idx.blobs[b.BlobHandle]; known {
			continue
		}
		idx.blobs[b.BlobHandle] = location{pack: pos, offset: b.Offset, length: b.Length, uncompressedLength: b.UncompressedLength}
	}
}

// Lookup returns where blob h is stored.
func (idx *Index) Lookup(h BlobHandle) (PackedBlob, bool) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	loc, ok := idx.blobs[h]
	if !ok {
		return PackedBlob{}, false
	}
	return PackedBlob{BlobHandle: h, PackID: idx.packs[loc.pack], Offset: loc.offset, Length: loc.length, UncompressedLength: loc.uncompressedLength}, true
}

// Has reports whether blob h is indexed.
func (idx *Index) Has(h BlobHandle) bool {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	_, ok := idx.blobs[h]
	return ok
}

// Len returns the number of blobs.
func (idx *Index) Len() int {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return len(idx.blobs)
}

// Packs returns every indexed pack with the size it must have.
func (idx *Index) Packs() map[ID]int64 {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	out := make(map[ID]int64, len(idx.packSize))
	for id, n := range idx.packSize {
		out[id] = n
	}
	return out
}

// PackSize returns the size pack id must have, or 0 if it is not indexed.
func (idx *Index) PackSize(id ID) int64 {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return idx.packSize[id]
}

// Each calls fn for every indexed blob; fn must not call back into idx.
func (idx *Index) Each(fn func(PackedBlob)) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	for h, loc := range idx.blobs {
		fn(PackedBlob{BlobHandle: h, PackID: idx.packs[loc.pack], Offset: loc.offset, Length: loc.length, UncompressedLength: loc.uncompressedLength})
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

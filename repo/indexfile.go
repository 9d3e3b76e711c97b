package repo

import (
	"context"
	"fmt"

	"github.com/escrow-backup/escrow/remote"
)

// IndexFile is one index file as stored: maintenance (prune) needs to know
// which file lists which pack, which the merged master index forgets.
type IndexFile struct {
	ID         ID
	Supersedes []ID
	Packs      []IndexPack
}

// IndexPack is one pack's entry in an index file.
type IndexPack struct {
	ID    ID
	Blobs []PackedBlob
}

// LoadIndexFile reads and validates one index file.
func (r *Repository) LoadIndexFile(ctx context.Context, id ID) (*IndexFile, error) {
	var f indexJSON
	if err := r.LoadJSON(ctx, remote.IndexFile, id, &f); err != nil {
		return nil, err
	}
	tmp := NewIndex()
	if err := tmp.addIndexFile(&f); err != nil {
		return nil, fmt.Errorf("index file %s: %w: %v", id.Str(), ErrCorrupt, err)
	}
	out := &IndexFile{ID: id, Supersedes: f.Supersedes, Packs: make([]IndexPack, 0, len(f.Packs))}
	for _, p := range f.Packs {
		ip := IndexPack{ID: p.ID, Blobs: make([]PackedBlob, len(p.Blobs))}
		for i, b := range p.Blobs {
			ip.Blobs[i] = PackedBlob{BlobHandle: BlobHandle{ID: b.ID, Type: b.Type}, PackID: p.ID,
				Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength}
		}
		out.Packs = append(out.Packs, ip)
	}
	return out, nil
}

// SaveIndexFiles writes index files listing packs, split so that no file
// gets too large, each naming supersedes as the files it replaces (restic's
// field; readers merge all index files either way, so the old files stay
// valid until they are deleted). It returns the new files' IDs.
func (r *Repository) SaveIndexFiles(ctx context.Context, packs []IndexPack, supersedes []ID) ([]ID, error) {
	var ids []ID
	for len(packs) > 0 || len(ids) == 0 {
		f := indexJSON{Supersedes: supersedes, Packs: []indexPackJSON{}}
		n := 0
		for len(packs) > 0 && (n == 0 || n+len(packs[0].Blobs) <= maxIndexBlobs) {
			p := packs[0]
			packs = packs[1:]
			ip := indexPackJSON{ID: p.ID, Blobs: make([]indexBlobJSON, len(p.Blobs))}
			for i, b := range p.Blobs {
				ip.Blobs[i] = indexBlobJSON{ID: b.ID, Type: b.Type, Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength}
			}
			n += len(p.Blobs)
			f.Packs = append(f.Packs, ip)
		}
		if len(f.Packs) == 0 {
			break // nothing to list: write no empty file
		}
		id, err := r.SaveJSON(ctx, remote.IndexFile, &f)
		if err != nil {
			return ids, fmt.Errorf("write index: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

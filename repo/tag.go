package repo

import (
	"context"
	"fmt"
	"slices"
)

// TagPreDeletion marks the last snapshot before a suspected mass deletion.
// forget must keep snapshots carrying it.
const TagPreDeletion = "pre-deletion"

// AddTag saves a copy of sn with tag added and returns it. The copy's
// Original names the snapshot first saved (as restic's tag command does),
// and sn itself is left in place: the host may write but never delete, so
// both stay until the owner forgets one. A snapshot that has the tag
// already is returned as it is.
func (r *Repository) AddTag(ctx context.Context, sn *Snapshot, tag string) (*Snapshot, error) {
	if sn.HasTag(tag) {
		return sn, nil
	}
	cp := *sn
	cp.Tags = append(slices.Clone(sn.Tags), tag)
	if cp.Original == nil {
		id := sn.ID
		cp.Original = &id
	}
	if _, err := r.SaveSnapshot(ctx, &cp); err != nil {
		return nil, fmt.Errorf("tag snapshot %s %s: %w", sn.ID.Str(), tag, err)
	}
	return &cp, nil
}

// CountFiles counts the regular files below the tree id. The index must
// be loaded.
func (r *Repository) CountFiles(ctx context.Context, id ID) (int, error) {
	n := 0
	err := r.Walk(ctx, id, "", func(_ string, node *Node) error {
		if node.Type == NodeFile {
			n++
		}
		return nil
	})
	return n, err
}

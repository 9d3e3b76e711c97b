package prune

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/repo"
)

// markUsed returns every blob the snapshots reach: their trees and the
// data blobs of their files. Trees are loaded level by level, in parallel.
// Any tree that cannot be loaded stops prune: without it, prune would take
// the blobs below it for garbage.
func markUsed(ctx context.Context, r *repo.Repository, snaps []*repo.Snapshot, workers int) (map[repo.BlobHandle]struct{}, error) {
	used := map[repo.BlobHandle]struct{}{}
	var level []repo.ID
	add := func(id repo.ID) {
		h := repo.BlobHandle{ID: id, Type: repo.TreeBlob}
		if _, ok := used[h]; !ok {
			used[h] = struct{}{}
			level = append(level, id)
		}
	}
	for _, sn := range snaps {
		add(*sn.Tree)
	}
	for len(level) > 0 {
		cur := level
		level = nil
		var mu sync.Mutex
		var found []*repo.Tree
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(workers)
		for _, id := range cur {
			g.Go(func() error {
				t, err := r.LoadTree(gctx, id)
				if err != nil {
					return fmt.Errorf("tree %s: %w (prune stops rather than take what is below it for unused; run `escrow check`)", id.Str(), err)
				}
				mu.Lock()
				found = append(found, t)
				mu.Unlock()
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		for _, t := range found {
			for _, n := range t.Nodes {
				for _, c := range n.Content {
					used[repo.BlobHandle{ID: c, Type: repo.DataBlob}] = struct{}{}
				}
				if n.Type == repo.NodeDir && n.Subtree != nil {
					add(*n.Subtree)
				}
			}
		}
	}
	return used, nil
}

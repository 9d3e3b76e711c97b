package check

import (
	"context"
	"fmt"
	"path"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/repo"
)

// treeRef is a reference to a tree and where it was first reached, for
// messages: trees shared between snapshots are checked only once.
type treeRef struct {
	id   repo.ID
	snap repo.ID
	path string
}

// missingRef is a reference to a blob no index lists.
type missingRef struct {
	h    repo.BlobHandle
	snap repo.ID
	path string
}

// treeResult is what checking one tree found.
type treeResult struct {
	subtrees []treeRef
	missing  []missingRef
	problem  *finding
}

// walkTrees checks every tree reachable from snaps, breadth first, loading
// each level's trees in parallel. Results are merged in order after each
// level, so which snapshot and path first reached a tree is deterministic.
func (c *checker) walkTrees(ctx context.Context, snaps []*repo.Snapshot) error {
	seen := map[repo.ID]bool{}
	missing := map[repo.BlobHandle]bool{}
	var level []treeRef
	visit := func(ref treeRef) {
		h := repo.BlobHandle{ID: ref.id, Type: repo.TreeBlob}
		if !c.r.Index().Has(h) {
			c.reportMissing(missingRef{h: h, snap: ref.snap, path: ref.path}, missing)
			return
		}
		if !seen[ref.id] {
			seen[ref.id] = true
			level = append(level, ref)
		}
	}
	for _, sn := range snaps {
		visit(treeRef{id: *sn.Tree, snap: sn.ID, path: "/"})
	}
	for len(level) > 0 {
		cur := level
		level = nil
		results := make([]treeResult, len(cur))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(c.opts.Workers)
		for i, ref := range cur {
			g.Go(func() error {
				results[i] = c.checkTree(gctx, ref)
				return gctx.Err()
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		for _, res := range results {
			if res.problem != nil {
				c.add(*res.problem)
			}
			for _, m := range res.missing {
				c.reportMissing(m, missing)
			}
			for _, ref := range res.subtrees {
				visit(ref)
			}
		}
		c.rep.Trees += len(cur)
		c.progress(StageTrees, c.rep.Trees, c.rep.Trees+len(level))
	}
	return nil
}

// checkTree loads one tree and checks that what its nodes reference is
// indexed. It is called concurrently and touches no checker state.
func (c *checker) checkTree(ctx context.Context, ref treeRef) treeResult {
	var res treeResult
	tree, err := c.r.LoadTree(ctx, ref.id)
	if err != nil {
		h := repo.BlobHandle{ID: ref.id, Type: repo.TreeBlob}
		pb, _ := c.r.Index().Lookup(h)
		res.problem = &finding{Problem: Problem{Kind: KindTree, Pack: pb.PackID, Blob: h,
			Err: fmt.Errorf("tree %s (folder %s in snapshot %s) cannot be loaded: %w", ref.id.Str(), ref.path, ref.snap.Str(), err),
			Fix: "nothing below the folder can be restored from the affected snapshots; restore it from a snapshot not listed here, " +
				"or re-run backup once the damaged pack is removed from the index by prune"},
			blobs: []repo.BlobHandle{h}}
		return res
	}
	for _, n := range tree.Nodes {
		p := path.Join(ref.path, n.Name)
		switch n.Type {
		case repo.NodeFile:
			for _, id := range n.Content {
				h := repo.BlobHandle{ID: id, Type: repo.DataBlob}
				if !c.r.Index().Has(h) {
					res.missing = append(res.missing, missingRef{h: h, snap: ref.snap, path: p})
				}
			}
		case repo.NodeDir:
			// DecodeTree guarantees a folder has a subtree.
			res.subtrees = append(res.subtrees, treeRef{id: *n.Subtree, snap: ref.snap, path: p})
		}
	}
	return res
}

// reportMissing adds one missing-blob problem per blob, naming the first
// reference found; fillAffected lists them all.
func (c *checker) reportMissing(m missingRef, seen map[repo.BlobHandle]bool) {
	if seen[m.h] {
		return
	}
	seen[m.h] = true
	if c.indexIncomplete {
		// The blob may be listed by the index file that failed to load:
		// not reported as missing, but restore cannot find it either, so
		// its users are listed under the index problem (the first finding).
		c.unchecked++
		c.findings[0].blobs = append(c.findings[0].blobs, m.h)
		return
	}
	what := "file"
	if m.h.Type == repo.TreeBlob {
		what = "folder"
	}
	c.add(finding{Problem: Problem{Kind: KindMissingBlob, Blob: m.h,
		Err: fmt.Errorf("%s: %w: %s %s in snapshot %s needs it, but no index lists it", m.h, repo.ErrMissing, what, m.path, m.snap.Str()),
		Fix: "the affected files cannot be restored from these snapshots (an index file or pack was probably deleted); " +
			"re-run backup while they still exist to store them again"},
		blobs: []repo.BlobHandle{m.h}})
}

// hits are the paths below one tree that need damaged blobs, relative to
// the tree, per finding: at most MaxAffected paths, and the full count.
type hits struct {
	paths map[int][]string
	count map[int]int
}

func (h *hits) add(k int, p string) *hits {
	if h == nil {
		h = &hits{paths: map[int][]string{}, count: map[int]int{}}
	}
	h.count[k]++
	if len(h.paths[k]) < MaxAffected {
		h.paths[k] = append(h.paths[k], p)
	}
	return h
}

// affecter finds who needs the damaged blobs. Each distinct tree is
// scanned once and its hits remembered, so snapshots sharing most of their
// trees cost little more than one.
type affecter struct {
	r      *repo.Repository
	byBlob map[repo.BlobHandle][]int // damaged blob -> findings about it
	memo   map[repo.ID]*hits         // nil: nothing below needs damaged blobs
}

// fillAffected walks every snapshot again, only when something is damaged,
// and fills each finding's Affected with the files and folders that need
// its blobs. A folder is listed when its tree is damaged; then nothing
// below it can be listed.
func (c *checker) fillAffected(ctx context.Context, snaps []*repo.Snapshot) error {
	a := &affecter{r: c.r, byBlob: map[repo.BlobHandle][]int{}, memo: map[repo.ID]*hits{}}
	for i, f := range c.findings {
		for _, h := range f.blobs {
			a.byBlob[h] = append(a.byBlob[h], i)
		}
	}
	if len(a.byBlob) == 0 {
		return nil
	}
	for i, sn := range snaps {
		for _, k := range a.byBlob[repo.BlobHandle{ID: *sn.Tree, Type: repo.TreeBlob}] {
			c.affect(k, Affected{Snapshot: sn.ID, Path: "/"})
		}
		h, err := a.scan(ctx, *sn.Tree)
		if err != nil {
			return err
		}
		if h != nil {
			for k, paths := range h.paths {
				for _, p := range paths {
					c.affect(k, Affected{Snapshot: sn.ID, Path: "/" + p})
				}
				c.findings[k].MoreAffected += h.count[k] - len(paths)
			}
		}
		c.progress(StageAffected, i+1, len(snaps))
	}
	return nil
}

func (c *checker) affect(k int, a Affected) {
	f := &c.findings[k]
	if len(f.Affected) < MaxAffected {
		f.Affected = append(f.Affected, a)
	} else {
		f.MoreAffected++
	}
}

func (a *affecter) scan(ctx context.Context, id repo.ID) (*hits, error) {
	if h, ok := a.memo[id]; ok {
		return h, nil
	}
	tree, err := a.r.LoadTree(ctx, id)
	if err != nil {
		// Already reported by walkTrees; the folder itself is listed by
		// its parent through byBlob.
		a.memo[id] = nil
		return nil, ctx.Err()
	}
	var h *hits
	for _, n := range tree.Nodes {
		switch n.Type {
		case repo.NodeFile:
			for _, k := range a.fileFindings(n.Content) {
				h = h.add(k, n.Name)
			}
		case repo.NodeDir:
			for _, k := range a.byBlob[repo.BlobHandle{ID: *n.Subtree, Type: repo.TreeBlob}] {
				h = h.add(k, n.Name)
			}
			sub, err := a.scan(ctx, *n.Subtree)
			if err != nil {
				return nil, err
			}
			if sub == nil {
				continue
			}
			for k, paths := range sub.paths {
				for _, p := range paths {
					h = h.add(k, n.Name+"/"+p)
				}
				h.count[k] += sub.count[k] - len(paths)
			}
		}
	}
	a.memo[id] = h
	return h, nil
}

// fileFindings returns the findings about any of a file's blobs, each once.
func (a *affecter) fileFindings(content []repo.ID) []int {
	var out []int
	for _, id := range content {
		for _, k := range a.byBlob[repo.BlobHandle{ID: id, Type: repo.DataBlob}] {
			dup := false
			for _, o := range out {
				dup = dup || o == k
			}
			if !dup {
				out = append(out, k)
			}
		}
	}
	return out
}

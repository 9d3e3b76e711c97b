package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/repo"
)

// batchLimits bound a batch: it is sent to the workers once it holds this
// many entries or blobs. A file is never split between batches.
type batchLimits struct {
	entries, blobs int
	// part bounds a ranged read of a pack (restorePart).
	part int64
}

// A batch holds at most batchEntries entries or batchBlobs blobs. A file
// costs about 1 KB while its batch is in memory (path, slim node, blob
// locations, its share of the pack plan), so a batch is a few MB, and a
// restore holds at most four (one being walked, one waiting, two being
// written) however large the snapshot. Large enough that a batch spans
// several packs, so few packs are read twice at a batch's edge.
const (
	batchEntries = 8192
	batchBlobs   = 32768
)

// batch is a part of the snapshot restored as one: its files are planned
// by pack and written by the workers; then its links and special files are
// made, and the directories the walk left before the batch ended get their
// metadata, deepest first.
type batch struct {
	files    []*fileEntry
	hard     []linkEntry
	symlinks []linkEntry
	specials []linkEntry
	// dirs are complete once this batch is: every entry below them was
	// put in this batch or an earlier one.
	dirs           []linkEntry
	entries, blobs int
}

// walker fills batches in walk order.
type walker struct {
	rs  *restorer
	out chan<- *batch
	cur *batch
	// inodes maps the inode of a file with more than one link to where its
	// first link was restored; files with a single link are not kept.
	inodes map[[2]uint64]string
	// open are the directories the walk is in, outermost first, each with
	// its snapshot path: their metadata waits until the walk leaves them.
	open     []linkEntry
	openPath []string
	seen     int
	buf      []byte // for reading files at the target
}

// stream walks the snapshot and restores it batch by batch, the walk one
// batch ahead of the workers. It returns how many entries were selected.
func (rs *restorer) stream(ctx context.Context, sn *repo.Snapshot) (int, error) {
	batches := make(chan *batch, 1)
	w := &walker{rs: rs, out: batches, cur: &batch{}, inodes: map[[2]uint64]string{}}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(batches)
		visit := func(p string, n *repo.Node) error { return w.visit(gctx, p, n) }
		if err := rs.walk(gctx, *sn.Tree, "", visit); err != nil {
			return err
		}
		w.leave("")
		if err := w.send(gctx); err != nil {
			return err
		}
		rs.mu.Lock()
		rs.prog.Counted = true
		rs.mu.Unlock()
		rs.progress(0, 0) // the final totals
		return nil
	})
	g.Go(func() error { return rs.consume(gctx, batches) })
	err := g.Wait()
	if err == nil {
		rs.progress(0, 0) // what is done, after the workers' last calls
	}
	return w.seen, err
}

// leave closes the open directories that p is not below: the walk is done
// with them, so they are complete once the current batch is.
func (w *walker) leave(p string) {
	for i := len(w.open) - 1; i >= 0; i-- {
		if p != "" && strings.HasPrefix(p, w.openPath[i]+"/") {
			break
		}
		w.cur.dirs = append(w.cur.dirs, w.open[i])
		w.cur.entries++
		w.open, w.openPath = w.open[:i], w.openPath[:i]
	}
}

func (w *walker) visit(ctx context.Context, p string, n *repo.Node) error {
	rs := w.rs
	w.leave(p)
	ok, onlyAbove := rs.included(p)
	if !ok {
		return repo.ErrSkipDir
	}
	w.seen++
	dst := filepath.Join(rs.opts.Target, filepath.FromSlash(p))
	switch n.Type {
	case repo.NodeDir:
		if onlyAbove {
			// A directory restored only because an included path lies
			// below it: an existing one (/var, /tmp) keeps its own owner,
			// mode and times; a missing one is created with the snapshot's.
			if _, err := os.Lstat(dst); err == nil {
				return nil
			}
		}
		if err := os.MkdirAll(dst, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", dst, err)
		}
		w.open = append(w.open, linkEntry{path: dst, node: slim(n)})
		w.openPath = append(w.openPath, p)
		return nil
	case repo.NodeFile:
		if onlyAbove {
			return nil
		}
		rs.mu.Lock()
		rs.prog.FilesTotal++
		rs.prog.BytesTotal += n.Size
		rs.mu.Unlock()
		if n.Links > 1 {
			key := [2]uint64{n.DeviceID, n.Inode}
			if first, seen := w.inodes[key]; seen {
				w.cur.hard = append(w.cur.hard, linkEntry{path: dst, target: first})
				return w.add(ctx, 0)
			}
			w.inodes[key] = dst
		}
		f := &fileEntry{path: dst, node: slim(n), blobs: make([]repo.PackedBlob, 0, len(n.Content))}
		for _, id := range n.Content {
			pb, found := rs.r.Index().Lookup(repo.BlobHandle{ID: id, Type: repo.DataBlob})
			if !found {
				rs.fail(dst, fmt.Errorf("data blob %s is not in the repository index (run `escrow check`)", id.Str()))
				return nil
			}
			f.blobs = append(f.blobs, pb)
		}
		// Into a target that was empty, nothing can match: a million
		// failed opens are worth skipping.
		if !rs.empty && matchesOK(f, &w.buf) {
			if err := rs.applyMeta(f.path, f.node); err != nil {
				rs.fail(f.path, err)
			}
			// The check that skipped it read the whole file against the
			// snapshot: that is what --verify would do again.
			rs.count(func(r *Result) {
				r.Skipped++
				if rs.opts.Verify {
					r.Verified++
				}
			})
			rs.progress(1, f.node.Size)
			return nil
		}
		w.cur.files = append(w.cur.files, f)
		return w.add(ctx, len(f.blobs))
	case repo.NodeSymlink:
		w.cur.symlinks = append(w.cur.symlinks, linkEntry{path: dst, node: slim(n)})
	default:
		w.cur.specials = append(w.cur.specials, linkEntry{path: dst, node: slim(n)})
	}
	return w.add(ctx, 0)
}

// add counts an entry with its blobs into the current batch and sends the
// batch once it is full.
func (w *walker) add(ctx context.Context, blobs int) error {
	w.cur.entries++
	w.cur.blobs += blobs
	if w.cur.entries < w.rs.limits.entries && w.cur.blobs < w.rs.limits.blobs {
		return nil
	}
	return w.send(ctx)
}

// send hands the current batch to the workers, waiting while they are
// still busy with the one before.
func (w *walker) send(ctx context.Context) error {
	b := w.cur
	w.cur = &batch{}
	if b.entries == 0 {
		return nil
	}
	select {
	case w.out <- b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slim keeps of a node what restoring it needs, and not its name, content
// list, extended attributes or user names: a batch keeps its entries' nodes
// until it is done, and the decoded trees they came from can go.
func slim(n *repo.Node) *repo.Node {
	return &repo.Node{Type: n.Type, Mode: n.Mode, ModTime: n.ModTime, AccessTime: n.AccessTime,
		UID: n.UID, GID: n.GID, Size: n.Size, Device: n.Device,
		LinkTarget: n.LinkTarget, LinkTargetRaw: n.LinkTargetRaw}
}

// batchesInFlight is how many batches the workers may be on at once: the
// packs of the next batch start while the last packs of one are still
// being written, so the workers never wait for a batch to end.
const batchesInFlight = 2

// consume writes the batches. A batch's packs go to the shared workers as
// soon as the batch arrives; what comes after its files (links, special
// files, verification, directories) is done once its packs are written
// and the batch before it is finished, so batches finish in walk order.
func (rs *restorer) consume(ctx context.Context, batches <-chan *batch) error {
	workers, wctx := errgroup.WithContext(ctx)
	workers.SetLimit(rs.opts.Workers)
	var finishers errgroup.Group
	slots := make(chan struct{}, batchesInFlight)
	prev := make(chan struct{})
	close(prev)
	err := func() error {
		for {
			// A slot first, then a batch: one batch waits in the
			// channel, not a second one here.
			select {
			case slots <- struct{}{}:
			case <-wctx.Done():
				return wctx.Err()
			}
			b, ok := <-batches
			if !ok {
				return nil
			}
			order, sizes := rs.plan(b)
			var written sync.WaitGroup
			for _, p := range order {
				written.Add(1)
				// Each worker has its buffers, grown to the largest range
				// and blob a batch needs, and reuses them from pack to
				// pack and batch to batch: a restore allocates about
				// nothing per pack.
				workers.Go(func() error {
					defer written.Done()
					bufs := <-rs.bufs
					bufs.grow(sizes)
					rs.restorePack(wctx, p, bufs)
					rs.bufs <- bufs
					return wctx.Err()
				})
			}
			before, done := prev, make(chan struct{})
			finishers.Go(func() error {
				defer func() { <-slots }()
				defer close(done)
				written.Wait()
				<-before
				return rs.finishBatch(wctx, b)
			})
			prev = done
		}
	}()
	// Finishers first: the workers' Wait cancels wctx, which they use.
	ferr := finishers.Wait()
	werr := workers.Wait()
	for _, e := range []error{err, werr, ferr} {
		if e != nil {
			return e
		}
	}
	return nil
}

// finishBatch makes a batch's links and special files once its files are
// written, verifies the files if asked, and sets the metadata of the
// directories the batch completes.
func (rs *restorer) finishBatch(ctx context.Context, b *batch) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, h := range b.hard {
		if rs.hasFailed(h.target) {
			rs.fail(h.path, fmt.Errorf("hard link target %s was not restored", h.target))
			continue
		}
		_ = os.Remove(h.path)
		if err := os.Link(h.target, h.path); err != nil {
			rs.fail(h.path, err)
			continue
		}
		rs.count(func(r *Result) { r.Hardlinks++ })
	}
	for _, l := range b.symlinks {
		_ = os.Remove(l.path)
		if err := os.Symlink(l.node.Target(), l.path); err != nil {
			rs.fail(l.path, err)
			continue
		}
		if err := rs.applyMeta(l.path, l.node); err != nil {
			rs.fail(l.path, err)
		}
		rs.count(func(r *Result) { r.Symlinks++ })
	}
	for _, s := range b.specials {
		if err := rs.makeSpecial(s.path, s.node); err != nil {
			rs.fail(s.path, err)
			continue
		}
		rs.count(func(r *Result) { r.Specials++ })
	}
	if rs.opts.Verify {
		rs.verify(ctx, b)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Directories last, deepest first (the walk leaves a directory before
	// its parent): creating entries changes a directory's mtime, and a
	// read-only directory would block its children.
	for _, d := range b.dirs {
		if err := rs.applyMeta(d.path, d.node); err != nil {
			rs.fail(d.path, err)
		}
		rs.count(func(r *Result) { r.Dirs++ })
	}
	return nil
}

func (rs *restorer) count(f func(*Result)) {
	rs.mu.Lock()
	f(&rs.res)
	rs.mu.Unlock()
}

func (rs *restorer) verify(ctx context.Context, b *batch) {
	buf := make([]byte, 0, 1<<20)
	for _, f := range b.files {
		if ctx.Err() != nil || f.failed.Load() {
			continue
		}
		ok, err := matches(f.path, f.node.Size, f.blobs, &buf)
		switch {
		case err != nil:
			rs.fail(f.path, fmt.Errorf("verify: %w", err))
		case !ok:
			rs.fail(f.path, errors.New("verify: restored content does not match the snapshot"))
		default:
			rs.count(func(r *Result) { r.Verified++ })
		}
	}
}

package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/internal/failpoint"
	"github.com/escrow-backup/escrow/repo"
)

// archiver walks the tree in one goroutine and hands file contents to a pool
// of workers. A directory's tree is saved once all its entries are done;
// subdirectories are walked before waiting on a directory's files, so the
// workers stay busy across the whole tree.
type archiver struct {
	r    *repo.Repository
	w    *repo.Writer
	opts *Options
	ex   *Excluder
	res  *Result

	names nameCache
	jobs  chan *fileJob
	// chunkBufs lends the chunk.MaxSize buffers splitting a file needs.
	chunkBufs chan []byte
	g         *errgroup.Group
	gctx      context.Context

	mu       sync.Mutex // guards res counters and errors written by workers
	progress Progress
}

type fileJob struct {
	path   string
	node   *repo.Node
	fi     fs.FileInfo
	parent *repo.Node
	done   chan struct{}
	err    error // a repository error: fatal for the backup
	skip   bool  // the file could not be read; reported in res.Errors
}

func newArchiver(ctx context.Context, r *repo.Repository, w *repo.Writer, opts *Options, ex *Excluder, res *Result) *archiver {
	g, gctx := errgroup.WithContext(ctx)
	a := &archiver{r: r, w: w, opts: opts, ex: ex, res: res, jobs: make(chan *fileJob, opts.Workers), g: g, gctx: gctx}
	// A worker needs a MaxSize buffer only while it splits a large file,
	// and hashing, compressing and encrypting its chunks keep a core busy:
	// one buffer per core, not per worker, lets as many large files be
	// read at once as there are cores to process them, while the other
	// workers go on with small files. Buffers are made on first use.
	n := min(opts.Workers, runtime.GOMAXPROCS(0))
	a.chunkBufs = make(chan []byte, n)
	for range n {
		a.chunkBufs <- nil
	}
	for i := 0; i < opts.Workers; i++ {
		g.Go(a.worker)
	}
	return a
}

// vdir is a directory above the backed-up paths: /var and /var/www when
// backing up /var/www/site. It holds only the way down to the targets.
type vdir struct {
	path     string
	children map[string]*vdir
	target   bool // back up everything below
}

func (a *archiver) run(ctx context.Context, paths []string) (repo.ID, error) {
	root := &vdir{path: "/", children: map[string]*vdir{}}
	for _, p := range paths {
		cur := root
		for _, c := range strings.Split(strings.Trim(p, "/"), "/") {
			if c == "" || cur.target {
				break
			}
			next := cur.children[c]
			if next == nil {
				next = &vdir{path: filepath.Join(cur.path, c), children: map[string]*vdir{}}
				cur.children[c] = next
			}
			cur = next
		}
		cur.target, cur.children = true, map[string]*vdir{}
	}
	var parentRoot *repo.ID
	if a.res.Parent != nil {
		parentRoot = a.res.Parent.Tree
	}
	id, err := a.saveVirtual(ctx, root, parentRoot)
	close(a.jobs)
	if gerr := a.g.Wait(); err == nil {
		err = gerr
	}
	if err == nil {
		err = ctx.Err()
	}
	return id, err
}

func (a *archiver) saveVirtual(ctx context.Context, d *vdir, parentTree *repo.ID) (repo.ID, error) {
	ptree := a.loadParentTree(ctx, parentTree)
	names := make([]string, 0, len(d.children))
	for n := range d.children {
		names = append(names, n)
	}
	sort.Strings(names)
	tree := &repo.Tree{}
	var pending []*fileJob
	for _, name := range names {
		c := d.children[name]
		fi, err := os.Lstat(c.path)
		if err != nil {
			a.fileError(c.path, err)
			continue
		}
		var pnode *repo.Node
		if ptree != nil {
			pnode = ptree.Find(name)
		}
		if !c.target {
			if !fi.IsDir() {
				a.fileError(c.path, errors.New("not a directory"))
				continue
			}
			node := a.nodeFromInfo(name, fi)
			var psub *repo.ID
			if pnode != nil && pnode.Type == repo.NodeDir {
				psub = pnode.Subtree
			}
			id, err := a.saveVirtual(ctx, c, psub)
			if err != nil {
				return repo.ID{}, err
			}
			node.Subtree = &id
			if err := tree.Insert(node); err != nil {
				return repo.ID{}, err
			}
			continue
		}
		dev, _ := deviceOf(fi)
		job, node, err := a.saveEntry(ctx, c.path, name, fi, pnode, dev)
		if err != nil {
			return repo.ID{}, err
		}
		if job != nil {
			pending = append(pending, job)
		} else if node != nil {
			if err := tree.Insert(node); err != nil {
				return repo.ID{}, err
			}
		}
	}
	if err := a.collect(ctx, tree, pending); err != nil {
		return repo.ID{}, err
	}
	return a.w.SaveTree(ctx, tree)
}

// saveEntry backs up one entry. Files are queued and returned as a job;
// everything else is finished at once and returned as a node (nil if skipped).
func (a *archiver) saveEntry(ctx context.Context, path, name string, fi fs.FileInfo, pnode *repo.Node, rootDev uint64) (*fileJob, *repo.Node, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	node := a.nodeFromInfo(name, fi)
	switch node.Type {
	case repo.NodeFile:
		job := &fileJob{path: path, node: node, fi: fi, parent: pnode, done: make(chan struct{})}
		select {
		case a.jobs <- job:
		case <-a.gctx.Done():
			return nil, nil, a.stopped(ctx)
		}
		return job, nil, nil
	case repo.NodeDir:
		var psub *repo.ID
		if pnode != nil && pnode.Type == repo.NodeDir {
			psub = pnode.Subtree
		} else {
			a.changed(path, Added, repo.NodeDir)
		}
		if a.reusable(path, psub) {
			node.Subtree = psub
			a.countDir(pnode, *psub)
			return nil, node, nil
		}
		id, ok, err := a.saveDir(ctx, path, psub, rootDev)
		if err != nil || !ok {
			return nil, nil, err
		}
		node.Subtree = &id
		a.countDir(pnode, id)
		return nil, node, nil
	case repo.NodeSymlink:
		target, err := os.Readlink(path)
		if err != nil {
			a.unreadable(path, err)
			return nil, nil, nil
		}
		node.LinkTarget = target
		if !validUTF8(target) {
			node.LinkTargetRaw = []byte(target)
		}
	}
	if a.opts.OnChange != nil && !sameSpecial(node, pnode) {
		kind := Modified
		if pnode == nil || pnode.Type != node.Type {
			kind = Added
		}
		a.changed(path, kind, node.Type)
	}
	return nil, node, nil
}

// reusable reports whether the parent's subtree can stand for the directory
// at path without reading it: the caller vouches that nothing below changed,
// and the tree is still in the repository.
func (a *archiver) reusable(path string, psub *repo.ID) bool {
	if psub == nil || a.opts.Changes == nil || a.opts.Changes.Touched(path) {
		return false
	}
	return a.r.Index().Has(repo.BlobHandle{ID: *psub, Type: repo.TreeBlob})
}

// sameSpecial compares what a snapshot records of a non-file, non-directory
// entry, for change reports.
func sameSpecial(n, p *repo.Node) bool {
	return p != nil && p.Type == n.Type && p.Mode == n.Mode && p.LinkTarget == n.LinkTarget &&
		p.UID == n.UID && p.GID == n.GID && p.ModTime.Equal(n.ModTime) && p.Device == n.Device
}

func (a *archiver) changed(path string, kind ChangeKind, typ string) {
	if a.opts.OnChange != nil {
		a.opts.OnChange(Change{Path: path, Kind: kind, Type: typ})
	}
}

// reportRemoved tells OnChange about the parent's entries that are gone.
func (a *archiver) reportRemoved(dir string, ptree *repo.Tree, now []*repo.Node) {
	if a.opts.OnChange == nil || ptree == nil {
		return
	}
	present := make(map[string]bool, len(now))
	for _, n := range now {
		present[n.Name] = true
	}
	for _, p := range ptree.Nodes {
		if !present[p.Name] {
			a.changed(filepath.Join(dir, p.Name), Removed, p.Type)
		}
	}
}

// saveDir stores a directory's tree; ok is false when it could not be read.
func (a *archiver) saveDir(ctx context.Context, path string, parentTree *repo.ID, rootDev uint64) (repo.ID, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		a.unreadable(path, err)
		return repo.ID{}, false, nil
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		a.unreadable(path, err)
		return repo.ID{}, false, nil
	}
	sort.Strings(names)
	ptree := a.loadParentTree(ctx, parentTree)
	tree := &repo.Tree{Nodes: make([]*repo.Node, 0, len(names))}
	var pending []*fileJob
	for _, name := range names {
		p := filepath.Join(path, name)
		if a.ex.Excluded(p) {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // deleted while we looked: not an error
				a.fileError(p, err)
			}
			continue
		}
		if a.opts.OneFileSystem && fi.IsDir() {
			if dev, ok := deviceOf(fi); ok && dev != rootDev {
				continue
			}
		}
		var pnode *repo.Node
		if ptree != nil {
			pnode = ptree.Find(name)
		}
		job, node, err := a.saveEntry(ctx, p, name, fi, pnode, rootDev)
		if err != nil {
			return repo.ID{}, false, err
		}
		if job != nil {
			pending = append(pending, job)
		} else if node != nil {
			tree.Nodes = append(tree.Nodes, node) // names are sorted already
		}
	}
	if err := a.collect(ctx, tree, pending); err != nil {
		return repo.ID{}, false, err
	}
	a.reportRemoved(path, ptree, tree.Nodes)
	id, err := a.w.SaveTree(ctx, tree)
	return id, err == nil, err
}

// collect waits for a directory's file jobs and adds their nodes in order.
func (a *archiver) collect(ctx context.Context, tree *repo.Tree, jobs []*fileJob) error {
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-a.gctx.Done():
			return a.stopped(ctx)
		}
		if j.err != nil {
			return j.err
		}
		if j.skip {
			continue
		}
		if err := tree.Insert(j.node); err != nil {
			return err
		}
	}
	return nil
}

// stopped explains why the worker pool ended early.
func (a *archiver) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if cause := context.Cause(a.gctx); cause != nil {
		return cause
	}
	return context.Canceled
}

func (a *archiver) loadParentTree(ctx context.Context, id *repo.ID) *repo.Tree {
	if id == nil {
		return nil
	}
	t, err := a.r.LoadTree(ctx, *id)
	if err != nil {
		// Without the parent we read everything again: slower, never wrong.
		a.opts.Logger.Warn("cannot load the parent snapshot's tree; reading files again", "tree", id.Str(), "err", err)
		return nil
	}
	return t
}

func (a *archiver) countDir(pnode *repo.Node, id repo.ID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case pnode == nil || pnode.Subtree == nil:
		a.res.Summary.DirsNew++
	case *pnode.Subtree == id:
		a.res.Summary.DirsUnmodified++
	default:
		a.res.Summary.DirsChanged++
	}
	a.progress.Dirs++
}

// unreadable reports an entry that could not be read, unless it was
// deleted since its directory was listed: then it is simply not in the
// snapshot, as if the backup had started a moment later.
func (a *archiver) unreadable(path string, err error) {
	if errors.Is(err, fs.ErrNotExist) {
		a.mu.Lock()
		a.res.Vanished++
		a.mu.Unlock()
		a.opts.Logger.Info("deleted before it could be read; left out", "path", path)
		return
	}
	a.fileError(path, err)
}

func (a *archiver) fileError(path string, err error) {
	a.mu.Lock()
	a.res.Errors = append(a.res.Errors, FileError{Path: path, Err: err})
	a.progress.Errors++
	a.mu.Unlock()
	a.opts.Logger.Warn("cannot back up", "path", path, "err", err)
}

func (a *archiver) worker() error {
	buf := make([]byte, 0, 64<<10)
	var sp *chunk.Splitter
	for {
		var job *fileJob
		select {
		case <-a.gctx.Done():
			return nil
		case j, ok := <-a.jobs:
			if !ok {
				return nil
			}
			job = j
		}
		var err error
		buf, sp, err = a.saveFile(job, buf, sp)
		if err != nil {
			job.err = err
			close(job.done)
			return err
		}
		close(job.done)
	}
}

// unchanged reports whether the parent snapshot's node can stand for the file.
func (a *archiver) unchanged(n, p *repo.Node) bool {
	if p == nil || p.Type != repo.NodeFile || p.Size != n.Size || p.Inode != n.Inode ||
		!p.ModTime.Equal(n.ModTime) || !p.ChangeTime.Equal(n.ChangeTime) {
		return false
	}
	return a.unchangedContent(p)
}

// unchangedContent reports whether all of a file node's blobs are indexed.
func (a *archiver) unchangedContent(p *repo.Node) bool {
	idx := a.r.Index()
	for _, id := range p.Content {
		if !idx.Has(repo.BlobHandle{ID: id, Type: repo.DataBlob}) {
			return false // the data went missing: store it again
		}
	}
	return true
}

// readAttempts bounds how often a file that changes while it is read is
// read again before KeepChanging decides.
const readAttempts = 3

func (a *archiver) saveFile(job *fileJob, buf []byte, sp *chunk.Splitter) ([]byte, *chunk.Splitter, error) {
	n := job.node
	if a.unchanged(n, job.parent) {
		n.Content = job.parent.Content
		a.fileDone(0, func(s *Result) { s.Summary.FilesUnmodified++ }, n.Size, 0)
		return buf, sp, nil
	}
	f, err := openNoAtime(job.path)
	if errors.Is(err, fs.ErrNotExist) {
		// Deleted since the directory was listed: the tree no longer has it.
		job.skip = true
		a.mu.Lock()
		a.res.Vanished++
		a.mu.Unlock()
		a.opts.Logger.Info("file deleted before it could be read; left out", "path", job.path)
		return buf, sp, nil
	}
	if err != nil {
		job.skip = true
		a.fileError(job.path, err)
		return buf, sp, nil
	}
	defer f.Close()
	var content []repo.ID
	var read, streamed uint64
	onChunk := func(n int) {
		streamed += uint64(n)
		a.chunkDone(uint64(n))
	}
	for attempt := 1; ; attempt++ {
		content, read, buf, sp, err = a.readContent(f, n.Size, buf, sp, onChunk)
		if err != nil {
			return buf, sp, a.classify(job, fmt.Errorf("save %s: %w", job.path, err))
		}
		fi, err := f.Stat()
		if err != nil {
			job.skip = true
			a.fileError(job.path, err)
			return buf, sp, nil
		}
		now := a.nodeFromInfo(n.Name, fi)
		if read == now.Size && now.ModTime.Equal(n.ModTime) && now.ChangeTime.Equal(n.ChangeTime) {
			break // what was read is one state of the file
		}
		// Written to while read: what we have may mix two versions.
		job.node, n = now, now
		if attempt < readAttempts {
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				job.skip = true
				a.fileError(job.path, err)
				return buf, sp, nil
			}
			continue
		}
		if a.opts.KeepChanging {
			a.keepPrevious(job)
			return buf, sp, nil
		}
		n.Size = read
		a.opts.Logger.Warn("file kept changing while it was read; stored as last read", "path", job.path)
		break
	}
	n.Content = content
	n.Size = read // what we stored is what the snapshot says
	isNew := job.parent == nil || job.parent.Type != repo.NodeFile
	kind := Modified
	if isNew {
		kind = Added
	}
	a.changed(job.path, kind, repo.NodeFile)
	a.fileDone(read, func(s *Result) {
		if isNew {
			s.Summary.FilesNew++
		} else {
			s.Summary.FilesChanged++
		}
	}, read, streamed)
	return buf, sp, nil
}

// keepPrevious keeps the parent's version of a file that would not hold still,
// or leaves a new file out, and lists it for a later run.
func (a *archiver) keepPrevious(job *fileJob) {
	if p := job.parent; p != nil && p.Type == repo.NodeFile && a.unchangedContent(p) {
		*job.node = *p
	} else {
		job.skip = true
	}
	a.mu.Lock()
	a.res.Deferred = append(a.res.Deferred, job.path)
	a.mu.Unlock()
	a.opts.Logger.Info("file kept changing while it was read; kept its previous version for now", "path", job.path)
}

// readContent stores the file's bytes from its current offset (the start)
// and returns the blob IDs and the number of bytes read. A file large
// enough to be split reports each stored chunk's size to onChunk.
func (a *archiver) readContent(f *os.File, size uint64, buf []byte, sp *chunk.Splitter, onChunk func(int)) ([]repo.ID, uint64, []byte, *chunk.Splitter, error) {
	ctx := a.gctx
	content := make([]repo.ID, 0, 1)
	var read uint64
	save := func(data []byte) error {
		failpoint.Hit(failpoint.ChunkRead)
		id, _, err := a.w.SaveBlob(ctx, repo.DataBlob, data)
		if err != nil {
			return err
		}
		content = append(content, id)
		read += uint64(len(data))
		return nil
	}
	var err error
	if size >= chunk.MinSize {
		sp, err = a.split(ctx, f, sp, func(data []byte) error {
			if err := save(data); err != nil {
				return err
			}
			onChunk(len(data))
			return nil
		})
		return content, read, buf, sp, err
	}
	// Small files are one chunk anyway: skip the splitter.
	if cap(buf) < int(size)+1 {
		buf = make([]byte, 0, size+1)
	}
	m, err := io.ReadFull(f, buf[:size+1])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, 0, buf, sp, readError{err}
	}
	err = nil
	switch {
	case m > int(size): // grew while we read: take the rest through the splitter
		sp, err = a.split(ctx, io.MultiReader(bytes.NewReader(buf[:m]), f), sp, save)
	case m > 0:
		err = save(buf[:m])
	}
	return content, read, buf, sp, err
}

// readError wraps a failure to read the source file (not the repository).
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// classify turns a source read error into a skipped file and keeps
// repository errors fatal.
func (a *archiver) classify(job *fileJob, err error) error {
	var re readError
	if errors.As(err, &re) {
		job.skip = true
		a.fileError(job.path, re.err)
		return nil
	}
	return err
}

func (a *archiver) split(ctx context.Context, rd io.Reader, sp *chunk.Splitter, save func([]byte) error) (*chunk.Splitter, error) {
	pol := a.r.Config().ChunkerPolynomial
	if sp == nil {
		sp = chunk.New(nil, pol)
	}
	sp.Reset(&errTagReader{rd}, pol)
	var buf []byte
	select {
	case buf = <-a.chunkBufs:
	case <-ctx.Done():
		return sp, ctx.Err()
	}
	defer func() { a.chunkBufs <- buf }()
	if cap(buf) < chunk.MaxSize {
		buf = make([]byte, 0, chunk.MaxSize)
	}
	for {
		if err := ctx.Err(); err != nil {
			return sp, err
		}
		data, err := sp.Next(buf[:cap(buf)])
		if errors.Is(err, io.EOF) {
			return sp, nil
		}
		if err != nil {
			return sp, err
		}
		if err := save(data); err != nil {
			return sp, err
		}
	}
}

// errTagReader marks errors from the source so they are not mistaken for
// repository failures.
type errTagReader struct{ rd io.Reader }

func (r *errTagReader) Read(p []byte) (int, error) {
	n, err := r.rd.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = readError{err}
	}
	return n, err
}

// fileDone counts a finished file of size bytes, read bytes of which were
// read now and streamed of which chunkDone already counted (more than size
// if the file was read again because it changed).
func (a *archiver) fileDone(read uint64, count func(*Result), size, streamed uint64) {
	a.mu.Lock()
	count(a.res)
	a.res.Summary.TotalFilesProcessed++
	a.res.Summary.TotalBytesProcessed += size
	a.res.BytesRead += read
	a.progress.Files++
	a.progress.BytesRead += read
	a.progress.Bytes = a.progress.Bytes + size - streamed
	p := a.progress
	a.mu.Unlock()
	if a.opts.Progress != nil {
		a.opts.Progress(p)
	}
}

// chunkDone counts n bytes of a large file as stored, so progress moves
// while a big file (a video, an old dump) is read.
func (a *archiver) chunkDone(n uint64) {
	a.mu.Lock()
	a.progress.Bytes += n
	p := a.progress
	a.mu.Unlock()
	if a.opts.Progress != nil {
		a.opts.Progress(p)
	}
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

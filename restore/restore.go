// Package restore writes a snapshot's files back to disk.
//
// A restore is planned before any byte moves: the tree is walked, files
// already correct at the target are skipped, and the blobs still needed are
// grouped by pack so that each pack is downloaded at most once, as one
// ranged read covering the blobs wanted from it. Files are written under a
// temporary name and renamed into place once complete, so an interrupted
// restore never leaves a file that looks whole but is not; running it again
// finishes the job.
package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// Options describe a restore.
type Options struct {
	Target string
	// Include limits the restore to these snapshot paths and what is below them.
	Include []string
	// Verify re-reads every restored file and checks it against the snapshot.
	Verify bool
	// Workers download packs in parallel; default one per core, at least 2
	// and at most 8. Each holds up to a pack's worth of data in memory.
	Workers  int
	Logger   *slog.Logger
	Progress func(Progress)
}

// Progress counts what is done.
type Progress struct {
	FilesDone, FilesTotal int
	BytesDone, BytesTotal uint64
}

// Result is what a restore did.
type Result struct {
	Files, Dirs, Symlinks, Hardlinks, Specials int
	// Skipped files were already correct at the target.
	Skipped  int
	Bytes    uint64
	Verified int
	// Errors lists files that could not be restored or failed verification.
	Errors []error
}

// Suffix marks files being written; they are renamed when complete.
const partialSuffix = ".escrow-partial"

type fileEntry struct {
	path      string
	node      *repo.Node
	blobs     []repo.PackedBlob
	remaining atomic.Int32
	failed    atomic.Bool
	skipped   bool
	// create makes the partial file before its first blob is written.
	create    sync.Once
	createErr error
}

type linkEntry struct {
	path   string
	node   *repo.Node
	target string // for hard links: the first path with the same inode
	// above marks a directory restored only because an included path lies
	// below it: it is created if missing, but an existing one (/var, /tmp)
	// keeps its own owner, mode and times.
	above bool
}

type restorer struct {
	r    *repo.Repository
	opts Options

	dirs     []linkEntry // path and node of each directory, parents first
	files    []*fileEntry
	symlinks []linkEntry
	hard     []linkEntry
	specials []linkEntry
	owner    bool
	// empty: the target was missing or empty when the restore began, so
	// no file there can already be correct and none is looked at.
	empty bool

	mu     sync.Mutex
	res    Result
	prog   Progress
	failed map[string]bool
}

// Run restores sn into opts.Target.
func Run(ctx context.Context, r *repo.Repository, sn *repo.Snapshot, opts Options) (*Result, error) {
	if opts.Target == "" {
		return nil, errors.New("no target directory given")
	}
	if opts.Workers <= 0 {
		opts.Workers = min(8, max(2, runtime.GOMAXPROCS(0)))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	target, err := filepath.Abs(opts.Target)
	if err != nil {
		return nil, err
	}
	opts.Target = target
	for i, inc := range opts.Include {
		opts.Include[i] = path.Clean("/" + inc)
	}
	rs := &restorer{r: r, opts: opts, owner: os.Geteuid() == 0, failed: map[string]bool{}}
	rs.empty = isEmptyDir(target)
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, fmt.Errorf("create target %s: %w", target, err)
	}
	if err := rs.plan(ctx, sn); err != nil {
		return nil, err
	}
	if len(opts.Include) > 0 && len(rs.files)+len(rs.dirs)+len(rs.symlinks)+len(rs.specials) == 0 {
		return nil, fmt.Errorf("%s: %w in snapshot %s", strings.Join(opts.Include, ", "), repo.ErrNotInSnapshot, sn.ID.Str())
	}
	if err := rs.restore(ctx); err != nil {
		return &rs.res, err
	}
	return &rs.res, nil
}

// isEmptyDir reports whether dir is missing or an empty directory.
func isEmptyDir(dir string) bool {
	f, err := os.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && errors.Is(err, io.EOF)
}

// included reports whether p is selected, and whether only because it is a
// directory on the way to a selected path.
func (rs *restorer) included(p string) (bool, bool) {
	if len(rs.opts.Include) == 0 {
		return true, false
	}
	above := false
	for _, inc := range rs.opts.Include {
		if p == inc || strings.HasPrefix(p, inc+"/") || inc == "/" {
			return true, false
		}
		if strings.HasPrefix(inc, p+"/") {
			above = true
		}
	}
	return above, above
}

func (rs *restorer) plan(ctx context.Context, sn *repo.Snapshot) error {
	inodes := map[[2]uint64]string{}
	return rs.walk(ctx, *sn.Tree, "", func(p string, n *repo.Node) error {
		ok, onlyAbove := rs.included(p)
		if !ok {
			return repo.ErrSkipDir
		}
		dst := filepath.Join(rs.opts.Target, filepath.FromSlash(p))
		switch n.Type {
		case repo.NodeDir:
			rs.dirs = append(rs.dirs, linkEntry{path: dst, node: n, above: onlyAbove})
		case repo.NodeFile:
			if onlyAbove {
				return nil
			}
			if n.Links > 1 {
				key := [2]uint64{n.DeviceID, n.Inode}
				if first, seen := inodes[key]; seen {
					rs.hard = append(rs.hard, linkEntry{path: dst, node: n, target: first})
					return nil
				}
				inodes[key] = dst
			}
			f := &fileEntry{path: dst, node: n}
			for _, id := range n.Content {
				pb, found := rs.r.Index().Lookup(repo.BlobHandle{ID: id, Type: repo.DataBlob})
				if !found {
					rs.fail(dst, fmt.Errorf("data blob %s is not in the repository index (run `escrow check`)", id.Str()))
					f.failed.Store(true)
					break
				}
				f.blobs = append(f.blobs, pb)
			}
			rs.files = append(rs.files, f)
			rs.prog.FilesTotal++
			rs.prog.BytesTotal += n.Size
		case repo.NodeSymlink:
			rs.symlinks = append(rs.symlinks, linkEntry{path: dst, node: n})
		default:
			rs.specials = append(rs.specials, linkEntry{path: dst, node: n})
		}
		return nil
	})
}

// walk is repo.Walk, except that a folder whose tree is damaged or
// missing in the store is reported as failed and passed over: damage costs
// what is below that folder, not the rest of the snapshot. A root tree that
// cannot be loaded, a store that stayed unreachable, or an error from fn
// still ends the walk.
func (rs *restorer) walk(ctx context.Context, id repo.ID, prefix string, fn repo.WalkFunc) error {
	return rs.r.WalkPast(ctx, id, prefix, fn, func(p string, err error) error {
		if !lost(err) {
			return err
		}
		rs.fail(filepath.Join(rs.opts.Target, filepath.FromSlash(p)),
			fmt.Errorf("nothing below this folder can be restored from this snapshot: %w (run `escrow check --read-data`)", err))
		return nil
	})
}

// lost reports whether err means the stored tree is wrong or gone (it does
// not verify, is in no index, or its pack is missing or too short to hold
// it) rather than that the store could not be reached through the retries.
func lost(err error) bool {
	return errors.Is(err, repo.ErrCorrupt) || errors.Is(err, repo.ErrMissing) || remote.IsPermanent(err)
}

func (rs *restorer) fail(p string, err error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.failed[p] {
		return
	}
	rs.failed[p] = true
	rs.res.Errors = append(rs.res.Errors, fmt.Errorf("%s: %w", p, err))
	rs.opts.Logger.Error("cannot restore", "path", p, "err", err)
}

func (rs *restorer) restore(ctx context.Context) error {
	for i, d := range rs.dirs {
		if d.above {
			if _, err := os.Lstat(d.path); err == nil {
				continue
			}
			rs.dirs[i].above = false // we create it, so it gets the snapshot's metadata
		}
		if err := os.MkdirAll(d.path, 0o700); err != nil {
			return fmt.Errorf("create directory %s: %w", d.path, err)
		}
	}
	if err := rs.restoreFiles(ctx); err != nil {
		return err
	}
	for _, h := range rs.hard {
		if rs.failed[h.target] {
			rs.fail(h.path, fmt.Errorf("hard link target %s was not restored", h.target))
			continue
		}
		_ = os.Remove(h.path)
		if err := os.Link(h.target, h.path); err != nil {
			rs.fail(h.path, err)
			continue
		}
		rs.res.Hardlinks++
	}
	for _, l := range rs.symlinks {
		_ = os.Remove(l.path)
		if err := os.Symlink(l.node.Target(), l.path); err != nil {
			rs.fail(l.path, err)
			continue
		}
		if err := rs.applyMeta(l.path, l.node); err != nil {
			rs.fail(l.path, err)
		}
		rs.res.Symlinks++
	}
	for _, s := range rs.specials {
		if err := rs.makeSpecial(s.path, s.node); err != nil {
			rs.fail(s.path, err)
			continue
		}
		rs.res.Specials++
	}
	if rs.opts.Verify {
		rs.verify(ctx)
	}
	// Directories last, deepest first: creating entries changes a
	// directory's mtime, and a read-only directory would block its children.
	sort.SliceStable(rs.dirs, func(i, j int) bool { return len(rs.dirs[i].path) > len(rs.dirs[j].path) })
	for _, d := range rs.dirs {
		if d.above {
			continue
		}
		if err := rs.applyMeta(d.path, d.node); err != nil {
			rs.fail(d.path, err)
		}
		rs.res.Dirs++
	}
	if len(rs.res.Errors) > 0 {
		return fmt.Errorf("%d of the snapshot's entries could not be restored", len(rs.res.Errors))
	}
	return ctx.Err()
}

func (rs *restorer) verify(ctx context.Context) {
	buf := make([]byte, 0, 1<<20)
	for _, f := range rs.files {
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
			rs.res.Verified++
		}
	}
}

func (rs *restorer) progress(files int, bytes uint64) {
	rs.mu.Lock()
	rs.prog.FilesDone += files
	rs.prog.BytesDone += bytes
	p := rs.prog
	rs.mu.Unlock()
	if rs.opts.Progress != nil {
		rs.opts.Progress(p)
	}
}

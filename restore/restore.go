// Package restore writes a snapshot's files back to disk.
//
// A restore streams: the tree is walked and restored in batches of a few
// thousand files, so its memory is bounded by a batch, not by the
// snapshot. The walk fills the next batch while the workers write the one
// before. Each batch is planned before any of its bytes move: files already
// correct at the target are skipped, and the blobs still needed are grouped
// by pack so that each pack is downloaded at most once per batch, as one
// ranged read covering the blobs wanted from it. A pack is read again only
// when its blobs fall in two batches; that is rare, because a backup packs
// files in the order it walks them, so a pack's blobs belong to neighbouring
// files: it happens at the edge of a batch, and to the packs a large file
// shares with the small files read beside it. Files are written under a
// temporary name and renamed into place once complete, so an interrupted
// restore never leaves a file that looks whole but is not; running it again
// finishes the job. A directory gets its metadata once all that is below it
// is restored, deepest first.
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

// Progress counts what is done. The totals grow as the walk goes, ahead of
// what is done; Counted says the walk is over and they are final.
type Progress struct {
	FilesDone, FilesTotal int
	BytesDone, BytesTotal uint64
	Counted               bool
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
	node      *repo.Node // slim: what applyMeta needs
	blobs     []repo.PackedBlob
	remaining atomic.Int32
	failed    atomic.Bool
	// create makes the partial file before its first blob is written.
	create    sync.Once
	createErr error
}

type linkEntry struct {
	path   string
	node   *repo.Node // slim
	target string     // for hard links: the first path with the same inode
}

type restorer struct {
	r      *repo.Repository
	opts   Options
	limits batchLimits
	owner  bool
	// empty: the target was missing or empty when the restore began, so
	// no file there can already be correct and none is looked at.
	empty bool
	// bufs are the workers' buffers, kept from batch to batch.
	bufs chan *packBufs
	// reads counts the packs read (a pack whose blobs fall in two batches
	// is read once for each), parts the ranged reads they took, and
	// readBytes their bytes.
	reads, parts, readBytes atomic.Int64

	mu     sync.Mutex
	res    Result
	prog   Progress
	failed map[string]bool
}

// Run restores sn into opts.Target.
func Run(ctx context.Context, r *repo.Repository, sn *repo.Snapshot, opts Options) (*Result, error) {
	res, _, err := run(ctx, r, sn, opts, batchLimits{entries: batchEntries, blobs: batchBlobs, part: restorePart})
	return res, err
}

// readCounts are how many packs a restore read, and in how many ranged reads.
type readCounts struct{ packs, parts int64 }

// run is Run with the batches' limits; it also returns how many packs it
// read, and in how many ranged reads.
func run(ctx context.Context, r *repo.Repository, sn *repo.Snapshot, opts Options, limits batchLimits) (*Result, readCounts, error) {
	if opts.Target == "" {
		return nil, readCounts{}, errors.New("no target directory given")
	}
	if opts.Workers <= 0 {
		opts.Workers = min(8, max(2, runtime.GOMAXPROCS(0)))
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	target, err := filepath.Abs(opts.Target)
	if err != nil {
		return nil, readCounts{}, err
	}
	opts.Target = target
	for i, inc := range opts.Include {
		opts.Include[i] = path.Clean("/" + inc)
	}
	rs := &restorer{r: r, opts: opts, limits: limits, owner: os.Geteuid() == 0, failed: map[string]bool{},
		bufs: make(chan *packBufs, opts.Workers)}
	for range opts.Workers {
		rs.bufs <- &packBufs{}
	}
	rs.empty = isEmptyDir(target)
	if err := os.MkdirAll(target, 0o700); err != nil {
		return nil, readCounts{}, fmt.Errorf("create target %s: %w", target, err)
	}
	seen, err := rs.stream(ctx, sn)
	rs.opts.Logger.Debug("restore read packs", "packs", rs.counts(), "ranges", rs.parts.Load(), "bytes", rs.readBytes.Load())
	if err != nil {
		return &rs.res, rs.counts(), err
	}
	if len(opts.Include) > 0 && seen == 0 {
		return nil, readCounts{}, fmt.Errorf("%s: %w in snapshot %s", strings.Join(opts.Include, ", "), repo.ErrNotInSnapshot, sn.ID.Str())
	}
	if err := syncFS(rs.opts.Target); err != nil {
		return &rs.res, rs.counts(), fmt.Errorf("sync %s: %w", rs.opts.Target, err)
	}
	if len(rs.res.Errors) > 0 {
		return &rs.res, rs.counts(), fmt.Errorf("%d of the snapshot's entries could not be restored", len(rs.res.Errors))
	}
	return &rs.res, rs.counts(), ctx.Err()
}

func (rs *restorer) counts() readCounts {
	return readCounts{packs: rs.reads.Load(), parts: rs.parts.Load()}
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

// hasFailed reports whether the entry at p was reported as not restored.
func (rs *restorer) hasFailed(p string) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.failed[p]
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

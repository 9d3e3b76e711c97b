// Package backup turns file trees and streams into snapshots.
//
// Files flow through a bounded pool of workers (read, split, hash, compress,
// encrypt, hand to the repository writer) while one goroutine walks the
// tree, so both cores stay busy and memory stays flat. Files unchanged since
// the parent snapshot (same type, size, mtime, ctime and inode, and all
// their blobs still indexed) are not read again.
package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/repo"
)

// Options describe one backup.
type Options struct {
	Paths         []string
	Excludes      []string
	OneFileSystem bool
	Tags          []string
	Host          string // defaults to the host name
	// Parent is the snapshot to compare against (FindParent picks the
	// usual one); nil reads every file.
	Parent *repo.Snapshot
	// NoParent reads every file again.
	NoParent bool
	// Workers read files in parallel; default twice the cores, at most 8.
	Workers        int
	ProgramVersion string
	Logger         *slog.Logger
	// Progress, when set, is called as files complete and as the chunks of
	// large files are stored, from several goroutines at once; keep it
	// cheap. Counts in a later call may be lower than in an earlier one
	// that raced it.
	Progress func(Progress)
	// Now is the clock; time.Now by default.
	Now func() time.Time

	// Changes, when set, limits the walk to what changed since Parent: a
	// directory it does not report as touched is taken from the parent
	// snapshot as it is, without being read. The agent sets it from what
	// the file watcher saw; nil walks the whole tree.
	Changes Changes
	// OnChange, when set, is called (from several goroutines) for every
	// entry found new, modified or removed compared with the parent.
	OnChange func(Change)
	// KeepChanging keeps the parent's version of a file that kept changing
	// while it was read (three attempts), or leaves a new one out, and lists
	// it in Result.Deferred for a later run. Without it the last read is
	// stored with a warning, as a one-off backup must store something.
	KeepChanging bool
	// SkipUnchanged saves no snapshot when the tree is the parent's (and
	// nothing was unreadable); Result.Unchanged then says so.
	SkipUnchanged bool

	// Chunks is the shape Stream cuts chunks with (chunk.Shape); the zero
	// Shape means restic's, which files always use. A stream deduplicates
	// only against streams cut with the same shape, so a caller keeps it
	// fixed for a given source.
	Chunks chunk.Shape
	// Compression is the level Stream compresses blobs at
	// (repo.CompressionStream for dumps); the default is the repository's.
	Compression repo.Compression
}

// Changes tells which directories may differ from the parent snapshot.
type Changes interface {
	// Touched reports whether anything at or below the directory dir (an
	// absolute path) may have changed.
	Touched(dir string) bool
}

// ChangeKind says how an entry differs from the parent snapshot.
type ChangeKind int

const (
	Added ChangeKind = iota + 1
	Modified
	Removed
)

func (k ChangeKind) String() string {
	switch k {
	case Added:
		return "added"
	case Modified:
		return "modified"
	case Removed:
		return "removed"
	}
	return "unknown"
}

// Change is one entry that differs from the parent snapshot.
type Change struct {
	Path string
	Kind ChangeKind
	Type string // repo.NodeFile, repo.NodeDir, ...
}

// Progress counts work done so far.
type Progress struct {
	Files, Dirs uint64
	BytesRead   uint64
	// Bytes is the size of the files done, read or unchanged, plus what
	// was stored so far of large files being read: the counterpart of a
	// Scan's byte total.
	Bytes  uint64
	Errors int
}

// FileError is a path that could not be backed up.
type FileError struct {
	Path string
	Err  error
}

func (e FileError) Error() string { return e.Path + ": " + e.Err.Error() }

// Result is what a backup did.
type Result struct {
	Snapshot *repo.Snapshot
	Parent   *repo.Snapshot
	// Errors lists unreadable paths; when non-empty the snapshot is saved
	// but tagged incomplete.
	Errors    []FileError
	Summary   repo.Summary
	BytesRead uint64
	// Deferred lists files that kept changing while they were read (see
	// Options.KeepChanging); the snapshot holds their previous version.
	Deferred []string
	// Unchanged is set, and Snapshot nil, when SkipUnchanged applied.
	Unchanged bool
	// Vanished counts files deleted between being listed and being read;
	// they are left out, which is what the tree looks like now.
	Vanished int
}

// Incomplete reports whether some paths could not be read.
func (r *Result) Incomplete() bool { return len(r.Errors) > 0 }

func (o *Options) fill() {
	if o.Workers <= 0 {
		o.Workers = 2 * runtime.GOMAXPROCS(0)
		if o.Workers > 8 {
			o.Workers = 8
		}
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// FindParent returns the newest snapshot with the same host and paths, or nil.
func FindParent(snaps []*repo.Snapshot, host string, paths []string) *repo.Snapshot {
	stored := make([]string, len(paths))
	for i, p := range paths {
		stored[i] = asStored(p)
	}
	sn, err := repo.FindSnapshot(snaps, "latest", repo.SnapshotFilter{Hosts: []string{host}, Paths: stored})
	if err != nil {
		return nil
	}
	return sn
}

// asStored is p as a snapshot's paths read back: the snapshot is JSON (as
// restic's), which carries each byte of a path that is not UTF-8 as
// U+FFFD. Without this a directory with such a name would never find its
// parent snapshot and be read in full every time. Two paths that differ only
// in such bytes may pick each other's snapshot as parent; that costs reads,
// never correctness, as files are matched by their exact names in the trees.
func asStored(p string) string {
	if utf8.ValidString(p) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		r, n := utf8.DecodeRuneInString(p[i:])
		if r == utf8.RuneError && n == 1 {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(p[i : i+n])
		}
		i += n
	}
	return b.String()
}

// newSnapshot fills the fields every snapshot gets.
func newSnapshot(opts *Options, paths []string, start time.Time) *repo.Snapshot {
	sn := &repo.Snapshot{
		Time:           start,
		Paths:          paths,
		Hostname:       opts.Host,
		Tags:           append([]string(nil), opts.Tags...),
		Excludes:       opts.Excludes,
		ProgramVersion: opts.ProgramVersion,
	}
	if u, err := user.Current(); err == nil {
		sn.Username = u.Username
		if v, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			sn.UID = uint32(v)
		}
		if v, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			sn.GID = uint32(v)
		}
	}
	return sn
}

// commit closes the writer (packs, then index) and only then saves the
// snapshot, so a listed snapshot never references data that is not stored.
func commit(ctx context.Context, r *repo.Repository, w *repo.Writer, sn *repo.Snapshot, res *Result, now func() time.Time) error {
	if err := w.Close(ctx); err != nil {
		return fmt.Errorf("store data: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	st := w.Stats()
	s := &res.Summary
	s.DataBlobs = int(st.DataBlobs.Load())
	s.TreeBlobs = int(st.TreeBlobs.Load())
	s.DataAdded = uint64(st.DataAdded.Load())
	s.DataAddedPacked = uint64(st.DataAddedPacked.Load())
	s.BackupEnd = now()
	sum := *s
	sn.Summary = &sum
	if len(res.Errors) > 0 && !sn.HasTag(repo.TagIncomplete) {
		sn.Tags = append(sn.Tags, repo.TagIncomplete)
	}
	if _, err := r.SaveSnapshot(ctx, sn); err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	res.Snapshot = sn
	return nil
}

// Files backs up the given paths.
func Files(ctx context.Context, r *repo.Repository, opts Options) (*Result, error) {
	opts.fill()
	if len(opts.Paths) == 0 {
		return nil, errors.New("nothing to back up: give at least one path")
	}
	ex, err := NewExcluder(opts.Excludes)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, p := range opts.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("path %s: %w", p, err)
		}
		if _, err := os.Lstat(abs); err != nil {
			return nil, fmt.Errorf("cannot back up %s: %w", p, err)
		}
		paths = append(paths, abs)
	}
	sort.Strings(paths)

	start := opts.Now()
	res := &Result{Summary: repo.Summary{BackupStart: start}}
	if !opts.NoParent {
		res.Parent = opts.Parent
	}
	w := r.NewWriter(ctx)
	a := newArchiver(ctx, r, w, &opts, ex, res)
	rootID, err := a.run(ctx, paths)
	if err != nil {
		_ = w.Close(ctx) // index what was uploaded, so a re-run need not upload it again
		return nil, err
	}
	if opts.SkipUnchanged && res.Parent != nil && res.Parent.Tree != nil && *res.Parent.Tree == rootID && len(res.Errors) == 0 {
		if err := w.Close(ctx); err != nil {
			return nil, fmt.Errorf("store data: %w", err)
		}
		res.Unchanged = true
		return res, nil
	}
	sn := newSnapshot(&opts, paths, start)
	sn.Tree = &rootID
	if res.Parent != nil {
		pid := res.Parent.ID
		sn.Parent = &pid
	}
	if err := commit(ctx, r, w, sn, res, opts.Now); err != nil {
		return nil, err
	}
	return res, nil
}

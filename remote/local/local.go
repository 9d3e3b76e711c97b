// Package local stores a repository in a folder on a local or mounted disk,
// in restic's default layout.
//
// Durability: an object becomes visible under its name only by rename(2) of a
// fully written and fsynced temp file, and the folder is fsynced after the
// rename, so a crash leaves either no object or the whole object. Temp files
// start with tmpPrefix and are never listed.
package local

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
	"strings"
	"syscall"

	"github.com/escrow-backup/escrow/internal/failpoint"
	"github.com/escrow-backup/escrow/remote"
)

const (
	dirMode = 0o700
	// tmpPrefix marks half-written objects; a leading dot keeps them apart
	// from hex object names, which never start with one.
	tmpPrefix = ".tmp-"
)

// Backend is a repository in a local folder.
type Backend struct {
	dir string // absolute
}

var _ remote.Backend = (*Backend)(nil)

// Create lays out a new, empty repository in dir: the folder itself and one
// folder per object type (data/00 … data/ff for packs), all mode 0700. It
// refuses a folder that already holds a repository config with an error
// matching remote.ErrExists.
func Create(ctx context.Context, dir string) (*Backend, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("create repository at %s: %w", dir, err)
	}
	if _, err := os.Lstat(filepath.Join(abs, "config")); err == nil {
		return nil, fmt.Errorf("create repository at %s: %w (nothing was changed)", abs, remote.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create repository at %s: %w", abs, fsError(err, abs))
	}

	dirs := []string{abs}
	for _, t := range remote.FileTypes {
		if t != remote.ConfigFile {
			dirs = append(dirs, filepath.Join(abs, string(t)))
		}
	}
	for i := range 256 {
		dirs = append(dirs, filepath.Join(abs, string(remote.PackFile), fmt.Sprintf("%02x", i)))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, dirMode); err != nil {
			return nil, fmt.Errorf("create repository at %s: %w", abs, fsError(err, abs))
		}
	}
	return &Backend{dir: abs}, nil
}

// Open opens the repository in dir. If dir or its config is missing the
// error matches remote.ErrNotFound.
func Open(dir string) (*Backend, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository at %s: %w", dir, err)
	}
	fi, err := os.Stat(filepath.Join(abs, "config"))
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return nil, fmt.Errorf("no repository at %s (run `escrow init` first): %w", abs, remote.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("open repository at %s: %w", abs, fsError(err, abs))
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("open repository at %s: config is not a regular file", abs)
	}
	return &Backend{dir: abs}, nil
}

// Location returns the repository's absolute path.
func (b *Backend) Location() string { return b.dir }

// Close does nothing; a local backend holds no resources between calls.
func (b *Backend) Close() error { return nil }

// path returns the file name of h, after checking that h cannot escape the
// repository folder or collide with temp files.
func (b *Backend) path(h remote.Handle) (string, error) {
	if err := h.Valid(); err != nil {
		return "", fmt.Errorf("%w: %w", remote.ErrPermanent, err)
	}
	if h.Type != remote.ConfigFile {
		if err := checkName(h.Name); err != nil {
			return "", fmt.Errorf("%w: invalid name for %s object: %w", remote.ErrPermanent, h.Type, err)
		}
		if h.Type == remote.PackFile && len(h.Name) < 2 {
			return "", fmt.Errorf("%w: invalid name %q for pack file: need at least two characters for its data/XX folder", remote.ErrPermanent, h.Name)
		}
	}
	return filepath.Join(b.dir, filepath.FromSlash(remote.ObjectPath(h))), nil
}

func checkName(name string) error {
	switch {
	case strings.ContainsAny(name, `/\`) || name == "." || name == "..":
		return fmt.Errorf("%q contains a path separator or is a relative folder", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("%q starts with a dot", name)
	}
	return nil
}

// Save writes data under h: into a temp file in the destination folder,
// fsynced, renamed into place, and the folder fsynced, so that the object
// is either absent or complete after a crash.
func (b *Backend) Save(ctx context.Context, h remote.Handle, data []byte) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	name, err := b.path(h)
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	dir := filepath.Dir(name)

	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		// A type folder can be missing in a repository copied by a tool
		// that drops empty folders.
		if err = os.MkdirAll(dir, dirMode); err == nil {
			f, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", h, fsError(err, b.dir))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()

	// CreateTemp makes 0600 files today; the repository's files must stay
	// private whatever it does in future.
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("save %s: %w", h, fsError(err, b.dir))
	}
	if _, err := io.Copy(f, failpoint.HalfReader(remote.MidUploadStep(h.Type), bytes.NewReader(data), int64(len(data)))); err != nil {
		return fmt.Errorf("save %s: %w", h, fsError(err, b.dir))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save %s: %w", h, fsError(err, b.dir))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save %s: %w", h, fsError(err, b.dir))
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("save %s: %w", h, fsError(err, b.dir))
	}
	if err := syncDir(dir); err != nil {
		// The object is in place but its name may not survive a crash.
		return fmt.Errorf("save %s: %w", h, fsError(err, b.dir))
	}
	return nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // folders cannot be opened for fsync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	// Some file systems cannot fsync a folder; the rename is then as
	// durable as that file system makes it.
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
		return nil
	}
	return err
}

// Load returns length bytes of h from offset; length 0 reads to the end. A
// range reaching past the end of the object is an error rather than a short
// read, so a truncated object cannot pass for a complete one.
func (b *Backend) Load(ctx context.Context, h remote.Handle, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	name, err := b.path(h)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, b.notFound(err))
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("load %s: %w", h, fsError(err, b.dir))
	}
	size := fi.Size()
	if err := checkRange(offset, length, size); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	if length == 0 {
		length = size - offset
	}
	return &sectionFile{SectionReader: io.NewSectionReader(f, offset, length), f: f}, nil
}

// checkRange rejects a range that does not lie inside an object of size
// bytes. A range starting at the end is rejected too (S3 answers it with
// 416), except a whole-object read of an empty object.
func checkRange(offset, length, size int64) error {
	switch {
	case offset < 0 || length < 0:
		return fmt.Errorf("%w: invalid range: offset %d, length %d", remote.ErrPermanent, offset, length)
	case offset == 0 && length == 0:
		return nil
	case offset >= size || length > size-offset:
		return fmt.Errorf("%w: range offset %d, length %d is beyond the end of the object (size %d)",
			remote.ErrPermanent, offset, length, size)
	}
	return nil
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionFile) Close() error { return s.f.Close() }

// Stat returns the size of h. For the config FileInfo.Name is empty, like
// its Handle's.
func (b *Backend) Stat(ctx context.Context, h remote.Handle) (remote.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return remote.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	name, err := b.path(h)
	if err != nil {
		return remote.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		return remote.FileInfo{}, fmt.Errorf("stat %s: %w", h, b.notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return remote.FileInfo{}, fmt.Errorf("stat %s: %s is not a regular file", h, name)
	}
	return remote.FileInfo{Name: h.Name, Size: fi.Size()}, nil
}

// Remove deletes h.
func (b *Backend) Remove(ctx context.Context, h remote.Handle) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	name, err := b.path(h)
	if err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("remove %s: %w", h, b.notFound(err))
	}
	return nil
}

// List calls fn for each object of type t. Pack files are found in the
// data/XX folders. A missing type folder lists as empty (copies made by
// tools that drop empty folders); any other error ends the listing.
func (b *Backend) List(ctx context.Context, t remote.FileType, fn func(remote.FileInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	switch t {
	case remote.ConfigFile:
		fi, err := b.Stat(ctx, remote.Handle{Type: remote.ConfigFile})
		if remote.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return fn(fi)
	case remote.PackFile:
		top := filepath.Join(b.dir, string(t))
		subs, err := readDir(top)
		if err != nil {
			return fmt.Errorf("list %s: %w", t, fsError(err, b.dir))
		}
		for _, sub := range subs {
			if !sub.IsDir() || len(sub.Name()) != 2 || strings.HasPrefix(sub.Name(), ".") {
				continue
			}
			if err := b.listDir(ctx, filepath.Join(top, sub.Name()), fn); err != nil {
				return fmt.Errorf("list %s: %w", t, err)
			}
		}
		return nil
	case remote.KeyFile, remote.LockFile, remote.SnapshotFile, remote.IndexFile, remote.ReleaseFile, remote.HeartbeatFile:
		if err := b.listDir(ctx, filepath.Join(b.dir, filepath.FromSlash(string(t))), fn); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return nil
	default:
		return fmt.Errorf("list: %w: invalid file type %q", remote.ErrPermanent, t)
	}
}

// listDir lists the regular, non-temp files of one folder.
func (b *Backend) listDir(ctx context.Context, dir string, fn func(remote.FileInfo) error) error {
	entries, err := readDir(dir)
	if err != nil {
		return fsError(err, b.dir)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the folder was read
		}
		if err != nil {
			return fsError(err, b.dir)
		}
		if err := fn(remote.FileInfo{Name: e.Name(), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// readDir is os.ReadDir that reads a missing folder as empty.
func readDir(dir string) ([]os.DirEntry, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return entries, err
}

// notFound turns a missing file into remote.ErrNotFound and anything else
// into an fsError.
func (b *Backend) notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", remote.ErrNotFound, err)
	}
	return fsError(err, b.dir)
}

// fsError adds the fix to errors an operator has to act on. Both are marked
// permanent: retrying a full disk or a permission problem for minutes only
// delays the report.
func fsError(err error, repo string) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %w (check that the user running escrow owns %s and can write to it, e.g. chown -R)",
			remote.ErrPermanent, err, repo)
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %w (free space on the disk or quota holding %s, or move the repository to a larger disk)",
			remote.ErrPermanent, err, repo)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w: %w (%s is on a read-only file system; remount it read-write)",
			remote.ErrPermanent, err, repo)
	}
	return err
}

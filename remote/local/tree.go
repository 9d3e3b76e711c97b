package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/escrow-backup/escrow/remote"
)

// Tree reads a folder that may hold many repositories as a tree, for views
// that span them (escrow fleet); it is local's counterpart of the S3
// backend's ListDir and GetKey. It never writes.
type Tree struct {
	dir string // absolute
}

// OpenTree opens the folder dir for reading.
func OpenTree(dir string) (*Tree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", abs, notFound(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open %s: %w: not a folder", abs, remote.ErrPermanent)
	}
	return &Tree{dir: abs}, nil
}

// Location is the folder's absolute path.
func (t *Tree) Location() string { return t.dir }

// path maps a slash-separated name below the folder to a file name,
// refusing names that climb out of it.
func (t *Tree) path(rel string) (string, error) {
	rel = strings.Trim(rel, "/")
	for _, part := range strings.Split(rel, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: invalid name %q", remote.ErrPermanent, rel)
		}
	}
	return filepath.Join(t.dir, filepath.FromSlash(rel)), nil
}

// ListDir lists one level of the folder dir ("" for the top): the names
// of its sub-folders and of the regular files in it. Temp files are left
// out; a missing folder lists as empty.
func (t *Tree) ListDir(ctx context.Context, dir string) (dirs []string, files []remote.FileInfo, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	name, err := t.path(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("list folder %s: %w", dir, err)
	}
	entries, err := readDir(name)
	if err != nil {
		return nil, nil, fmt.Errorf("list folder %s: %w", dir, fsError(err, t.dir))
	}
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.Name(), "."):
		case e.IsDir():
			dirs = append(dirs, e.Name())
		case e.Type().IsRegular():
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("list folder %s: %w", dir, fsError(err, t.dir))
			}
			files = append(files, remote.FileInfo{Name: e.Name(), Size: fi.Size()})
		}
	}
	return dirs, files, nil
}

// GetKey reads the file at key, at most limit bytes: a larger file is an
// error, not a truncated read.
func (t *Tree) GetKey(ctx context.Context, key string, limit int64) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name, err := t.path(key)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, err)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, notFound(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", key, fsError(err, t.dir))
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("load %s: %w: larger than %d bytes", key, remote.ErrPermanent, limit)
	}
	return data, nil
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", remote.ErrNotFound, err)
	}
	return err
}

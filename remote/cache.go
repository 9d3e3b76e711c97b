package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/escrow-backup/escrow/internal/failpoint"
)

// Cache keeps copies of a store's index and snapshot files in a local
// directory, so that a restarted agent reads them from disk instead of
// fetching thousands of small objects again.
//
// Those files are immutable and named by the SHA-256 of their content, so a
// cached copy is used only if it still hashes to its name: a damaged or
// tampered cache costs a download, never a wrong answer. Deleting the
// directory is always safe.
type Cache struct {
	Backend
	dir string
}

// cached reports whether objects of type t are kept.
func cached(t FileType) bool { return t == IndexFile || t == SnapshotFile }

// NewCache caches b's index and snapshot files below dir (created with mode
// 0700: the files are encrypted, but their sizes and names are not public).
func NewCache(b Backend, dir string) (*Cache, error) {
	for _, t := range []FileType{IndexFile, SnapshotFile} {
		if err := os.MkdirAll(filepath.Join(dir, string(t)), 0o700); err != nil {
			return nil, fmt.Errorf("cache directory: %w", err)
		}
	}
	return &Cache{Backend: b, dir: dir}, nil
}

func (c *Cache) path(h Handle) string { return filepath.Join(c.dir, string(h.Type), h.Name) }

// Load serves cached types from the cache when the copy is intact, and
// fills the cache from the store otherwise.
func (c *Cache) Load(ctx context.Context, h Handle, offset, length int64) (io.ReadCloser, error) {
	if !cached(h.Type) || h.Valid() != nil {
		return c.Backend.Load(ctx, h, offset, length)
	}
	data, err := os.ReadFile(c.path(h))
	if err != nil || !named(data, h.Name) {
		if data, err = LoadAll(ctx, c.Backend, h); err != nil {
			return nil, err
		}
		if named(data, h.Name) {
			c.put(h, data)
		}
	}
	end := int64(len(data))
	if length > 0 {
		end = offset + length
	}
	whole := offset == 0 && length == 0
	if !whole && (offset < 0 || offset >= int64(len(data)) || end > int64(len(data))) {
		return nil, fmt.Errorf("load %s: %w: range %d+%d outside the object's %d bytes", h, ErrPermanent, offset, length, len(data))
	}
	part := data[offset:end]
	return &bufferedReader{Reader: bytes.NewReader(part), data: part}, nil
}

// Save stores h, then keeps a copy.
func (c *Cache) Save(ctx context.Context, h Handle, data []byte) error {
	if err := c.Backend.Save(ctx, h, data); err != nil {
		return err
	}
	if cached(h.Type) && named(data, h.Name) {
		c.put(h, data)
	}
	return nil
}

// Remove removes h from the store and the cache.
func (c *Cache) Remove(ctx context.Context, h Handle) error {
	if cached(h.Type) && h.Valid() == nil {
		_ = os.Remove(c.path(h))
	}
	return c.Backend.Remove(ctx, h)
}

// Prune drops cached files the store no longer lists (removed by the
// owner's maintenance), so the cache does not grow forever.
func (c *Cache) Prune(ctx context.Context) error {
	for _, t := range []FileType{IndexFile, SnapshotFile} {
		live := map[string]bool{}
		if err := c.Backend.List(ctx, t, func(fi FileInfo) error { live[fi.Name] = true; return nil }); err != nil {
			return err
		}
		entries, err := os.ReadDir(filepath.Join(c.dir, string(t)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cache directory: %w", err)
		}
		for _, e := range entries {
			if !live[e.Name()] {
				_ = os.Remove(filepath.Join(c.dir, string(t), e.Name()))
			}
		}
	}
	return nil
}

// put writes a copy; failures only cost a later download.
func (c *Cache) put(h Handle, data []byte) {
	f, err := os.CreateTemp(filepath.Join(c.dir, string(h.Type)), ".tmp-*")
	if err != nil {
		return
	}
	_, werr := f.Write(data)
	if cerr := f.Close(); werr != nil || cerr != nil {
		os.Remove(f.Name())
		return
	}
	failpoint.Hit(failpoint.StateWrite)
	if err := os.Rename(f.Name(), c.path(h)); err != nil {
		os.Remove(f.Name())
	}
}

// named reports whether data hashes to name.
func named(data []byte, name string) bool {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]) == name
}

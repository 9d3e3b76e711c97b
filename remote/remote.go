// Package remote moves named, immutable objects to and from storage.
//
// It knows nothing of the repository format: a Backend stores bytes under a
// Handle (a file type and a name) and hands them back, whole or as a range.
// The layout of names under a prefix is restic's default layout, shared by
// every backend so that a repository can be copied between them as files.
package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"
)

// FileType is the kind of object; each kind lives in its own folder.
type FileType string

// The object kinds of a restic repository.
const (
	PackFile     FileType = "data"
	KeyFile      FileType = "keys"
	LockFile     FileType = "locks"
	SnapshotFile FileType = "snapshots"
	IndexFile    FileType = "index"
	ConfigFile   FileType = "config"
)

// ReleaseFile is escrow's own kind, outside restic's folders (restic never
// lists escrow/): an empty object escrow/released/<lock id> says that the
// lock file of that name is released. It lets a writer without delete
// rights give up a lock; see docs/design.md, "Locks".
const ReleaseFile FileType = "escrow/released"

// FileTypes lists every kind a repository holds, in the order a full listing walks them.
var FileTypes = []FileType{ConfigFile, KeyFile, LockFile, SnapshotFile, IndexFile, PackFile, ReleaseFile}

// Handle names one object.
type Handle struct {
	Type FileType
	Name string // hex ID; empty for the config file
}

func (h Handle) String() string {
	if h.Type == ConfigFile {
		return "config"
	}
	n := h.Name
	if len(n) > 8 {
		n = n[:8]
	}
	return string(h.Type) + "/" + n
}

// Valid reports whether the handle can name an object.
func (h Handle) Valid() error {
	switch h.Type {
	case ConfigFile:
		return nil
	case PackFile, KeyFile, LockFile, SnapshotFile, IndexFile, ReleaseFile, HeartbeatFile:
	default:
		return fmt.Errorf("invalid file type %q", h.Type)
	}
	if h.Name == "" {
		return fmt.Errorf("empty name for %s object", h.Type)
	}
	return nil
}

// ObjectPath is the object's path relative to the repository root in restic's
// default layout: data/<first two hex digits>/<id>, <type>/<id>, and config.
func ObjectPath(h Handle) string {
	switch h.Type {
	case ConfigFile:
		return "config"
	case PackFile:
		if len(h.Name) >= 2 {
			return path.Join("data", h.Name[:2], h.Name)
		}
	}
	return path.Join(string(h.Type), h.Name)
}

// FileInfo describes a stored object. Name is the Handle's name, so
// Handle{Type: t, Name: fi.Name} addresses a listed object; it is empty for
// the config.
type FileInfo struct {
	Name string
	Size int64
	// ModTime is when the object was stored, where the backend knows it
	// (List fills it); prune's grace period for unindexed packs reads it.
	ModTime time.Time
}

// Backend stores objects. Implementations must make an object visible under
// its name only once it is completely written, so that a crash never leaves
// a half-written object behind a valid name.
type Backend interface {
	// Location names the store for messages, without secrets.
	Location() string
	// Save stores data under h. Saving over an existing object is allowed
	// (the same content, written again after a retry).
	Save(ctx context.Context, h Handle, data []byte) error
	// Load returns length bytes of h starting at offset; length 0 means to
	// the end. A range that does not lie inside the object (including one
	// starting at its end) is a permanent error, never a short read. The
	// caller closes the reader.
	Load(ctx context.Context, h Handle, offset, length int64) (io.ReadCloser, error)
	// Stat returns the object's size, or an error matching ErrNotFound.
	Stat(ctx context.Context, h Handle) (FileInfo, error)
	// List calls fn for every object of type t. An error while listing is
	// returned, never turned into a shorter list.
	List(ctx context.Context, t FileType, fn func(FileInfo) error) error
	// Remove deletes h, or returns an error matching ErrNotFound if it does
	// not exist. Only owner-side maintenance calls it: the backing-up side
	// never deletes (its credentials may only put, get and list).
	Remove(ctx context.Context, h Handle) error
	// Close releases resources.
	Close() error
}

// Sentinel errors that callers branch on. Backends wrap their own errors so
// that errors.Is matches these; an invalid Handle or FileType is permanent.
var (
	// ErrNotFound: the object (or the repository) does not exist.
	ErrNotFound = errors.New("not found")
	// ErrPermanent marks an error no retry can fix: access denied, no such
	// bucket, invalid credentials, a malformed request.
	ErrPermanent = errors.New("permanent")
	// ErrExists: creating a repository found one already there.
	ErrExists = errors.New("a repository already exists there")
)

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsPermanent reports whether retrying err is pointless.
func IsPermanent(err error) bool {
	return errors.Is(err, ErrPermanent) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// LoadAll reads a whole object.
func LoadAll(ctx context.Context, b Backend, h Handle) ([]byte, error) {
	return LoadRange(ctx, b, h, 0, 0)
}

// LoadRange reads length bytes of h from offset (0: to the end) into
// memory. When the backend already holds them in memory (the retry layer
// does), they are returned without another copy.
func LoadRange(ctx context.Context, b Backend, h Handle, offset, length int64) ([]byte, error) {
	rd, err := b.Load(ctx, h, offset, length)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	if br, ok := rd.(*bufferedReader); ok {
		return br.data, nil
	}
	data, err := readInto(rd, length, nil)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", h, err)
	}
	return data, nil
}

// LoadRangeInto is LoadRange reading into buf, reused when its capacity
// suffices, so that a caller reading many ranges can keep one buffer.
func LoadRangeInto(ctx context.Context, b Backend, h Handle, offset, length int64, buf []byte) ([]byte, error) {
	if rb, ok := b.(*retryBackend); ok {
		return rb.loadInto(ctx, h, offset, length, buf)
	}
	rd, err := b.Load(ctx, h, offset, length)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	data, err := readInto(rd, length, buf)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", h, err)
	}
	return data, nil
}

// readInto reads rd to its end into buf (reallocated if too small); with
// length > 0, rd must hold exactly length bytes.
func readInto(rd io.Reader, length int64, buf []byte) ([]byte, error) {
	if length == 0 {
		w := bytes.NewBuffer(buf[:0])
		_, err := w.ReadFrom(rd)
		return w.Bytes(), err
	}
	if int64(cap(buf)) < length {
		buf = make([]byte, length)
	}
	buf = buf[:length]
	if _, err := io.ReadFull(rd, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("short read: %w", err)
	}
	var one [1]byte
	if n, _ := rd.Read(one[:]); n > 0 {
		return nil, fmt.Errorf("more than the %d bytes asked for", length)
	}
	return buf, nil
}

// bufferedReader is a Load result already read into memory.
type bufferedReader struct {
	*bytes.Reader
	data []byte
}

func (*bufferedReader) Close() error { return nil }

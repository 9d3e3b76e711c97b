package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// Every object but the config is named by the hash of its content (packs:
// of each blob's plaintext), so a reader knows when the object under a name
// is not the one that was written. In a bucket with versioning nobody can
// remove the version that was written, only put another on top; the reader
// then falls back to older versions, newest first, and warns once per
// object. The config has no hash name: a version the key cannot decrypt is
// passed over the same way.

// versionedBackend is a store that keeps older versions of objects
// (remote/s3, through the retry layer).
type versionedBackend interface {
	Versions(ctx context.Context, h remote.Handle) ([]remote.Version, error)
	LoadVersion(ctx context.Context, h remote.Handle, versionID string, offset, length int64) (io.ReadCloser, error)
}

// fallback reads objects, falling back to older versions when the current
// one fails verification.
type fallback struct {
	be  remote.Backend
	log *slog.Logger

	mu sync.Mutex
	// used is the version that passed, per object that needed an older
	// one: the next read of the object (another blob of the same pack)
	// tries it first, and the warning is given once.
	used map[remote.Handle]string
	// overwritten lists those objects in the order they were found.
	overwritten []Overwritten
}

// Overwritten is an object whose current version failed verification and
// that was read from an older version instead.
type Overwritten struct {
	Object remote.Handle
	// BadTime is when the newest unsound version was written.
	BadTime time.Time
	// Used is the version read instead, and when it was written.
	Used     string
	UsedTime time.Time
}

// Overwritten lists the objects read so far from an older version because
// their current one was written over, so that check can report them.
func (r *Repository) Overwritten() []Overwritten {
	r.fb.mu.Lock()
	defer r.fb.mu.Unlock()
	return append([]Overwritten(nil), r.fb.overwritten...)
}

func newFallback(be remote.Backend, log *slog.Logger) *fallback {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &fallback{be: be, log: log, used: map[remote.Handle]string{}}
}

// load reads length bytes of h from offset (0: to the end) and hands them
// to verify. When the current version fails verify (or cannot be read as
// the range, being another object), older versions are
// tried newest first. A missing object is not looked for in older
// versions: a delete marker hides it, and reading the past is what --as-of
// is for.
func (f *fallback) load(ctx context.Context, h remote.Handle, offset, length int64, verify func([]byte) error) error {
	vb, versioned := f.be.(versionedBackend)
	f.mu.Lock()
	known, ok := f.used[h]
	f.mu.Unlock()
	if ok && versioned {
		if data, err := loadVersion(ctx, vb, h, known, offset, length); err == nil && verify(data) == nil {
			return nil
		}
	}
	data, err := remote.LoadRange(ctx, f.be, h, offset, length)
	if err == nil {
		err = verify(data)
		if err == nil {
			return nil
		}
		// Bytes damaged on the way (a flaky network card, a proxy, a
		// store's bad disk read) are sound when read again; damage in the
		// store is not. One more read keeps the first from ever being
		// taken for the second.
		if again, rerr := remote.LoadRange(ctx, f.be, h, offset, length); rerr == nil && verify(again) == nil {
			f.log.Warn("an object read from the store failed verification once and was sound when read again (a flaky network or store)",
				"object", h.String(), "err", err)
			return nil
		}
	} else if remote.IsNotFound(err) || ctx.Err() != nil || !remote.IsPermanent(err) {
		// Only an object that is not what was written is looked for in
		// older versions: a store that stayed unreachable through the
		// retries would not answer a listing either.
		return err
	}
	if !versioned {
		return err
	}
	versions, verr := vb.Versions(ctx, h)
	if errors.Is(verr, remote.ErrNoVersions) {
		return err
	}
	if verr != nil {
		return fmt.Errorf("%w (looking for an older version of it failed too: %v)", err, verr)
	}
	var bad time.Time
	tried := 0
	for _, v := range versions {
		if v.DeleteMarker {
			continue
		}
		tried++
		data, lerr := loadVersion(ctx, vb, h, v.ID, offset, length)
		if lerr == nil {
			lerr = verify(data)
		}
		if lerr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if bad.IsZero() {
				bad = v.Modified
			}
			continue
		}
		if tried == 1 {
			return nil // a newer version appeared since the first read, and it is sound
		}
		f.mu.Lock()
		_, warned := f.used[h]
		f.used[h] = v.ID
		if !warned {
			f.overwritten = append(f.overwritten, Overwritten{Object: h, BadTime: bad, Used: v.ID, UsedTime: v.Modified})
		}
		f.mu.Unlock()
		if !warned {
			f.log.Warn("an object in the store does not match its name or key: someone wrote over it; reading the older version that does (to make the store whole again, run escrow recover --as-of a time before the overwrite; see docs/as-of.md)",
				"object", h.String(), "bad_version_time", bad.UTC().Format(time.RFC3339), "used_version", v.ID, "used_version_time", v.Modified.UTC().Format(time.RFC3339))
		}
		return nil
	}
	return fmt.Errorf("%w (none of its %d stored versions is sound either)", err, tried)
}

func loadVersion(ctx context.Context, vb versionedBackend, h remote.Handle, id string, offset, length int64) ([]byte, error) {
	rd, err := vb.LoadVersion(ctx, h, id, offset, length)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("load %s version %s: %w", h, id, err)
	}
	if length > 0 && int64(len(data)) != length {
		return nil, fmt.Errorf("load %s version %s: got %d bytes, want %d", h, id, len(data), length)
	}
	return data, nil
}

// LoadPackedBlob reads one blob at its place in its pack, falling back to
// older versions of the pack if the current one does not hold it. Readers
// that fetch many blobs of a pack in one request call it for a blob that
// failed to open.
func (r *Repository) LoadPackedBlob(ctx context.Context, pb PackedBlob, buf []byte) ([]byte, error) {
	var plain []byte
	h := remote.Handle{Type: remote.PackFile, Name: pb.PackID.String()}
	err := r.fb.load(ctx, h, int64(pb.Offset), int64(pb.Length), func(sealed []byte) error {
		var err error
		plain, err = r.OpenBlob(pb, sealed, buf)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load %s from pack %s: %w", pb.BlobHandle, pb.PackID.Str(), err)
	}
	return plain, nil
}

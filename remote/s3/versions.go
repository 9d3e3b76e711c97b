package s3

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/remote"
)

// Versions lists the versions of h, newest first, delete markers included.
func (b *Backend) Versions(ctx context.Context, h remote.Handle) ([]remote.Version, error) {
	key, err := b.key(h)
	if err != nil {
		return nil, fmt.Errorf("versions of %s: %w", h, err)
	}
	var out []remote.Version
	err = b.listVersions(ctx, key, "versions of "+h.String(), func(obj minio.ObjectInfo) error {
		if obj.Key == key {
			out = append(out, version(obj))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortNewestFirst(out)
	return out, nil
}

// LoadVersion is Load of one version of h.
func (b *Backend) LoadVersion(ctx context.Context, h remote.Handle, versionID string, offset, length int64) (io.ReadCloser, error) {
	if versionID == "" {
		return nil, fmt.Errorf("load %s: %w: empty version ID", h, remote.ErrPermanent)
	}
	return b.load(ctx, h, versionID, offset, length)
}

// listVersions calls fn for every version of every key under prefix, in
// the store's order: keys ascending, each key's versions newest first.
func (b *Backend) listVersions(ctx context.Context, prefix, what string, fn func(minio.ObjectInfo) error) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}
	for obj := range b.client.ListObjectsIter(lctx, b.cfg.Bucket, opts) {
		if obj.Err != nil {
			return b.classify(ctx, "list", what, obj.Err)
		}
		if err := fn(obj); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", what, err)
	}
	return nil
}

func version(obj minio.ObjectInfo) remote.Version {
	return remote.Version{ID: obj.VersionID, Modified: obj.LastModified, Size: obj.Size,
		DeleteMarker: obj.IsDeleteMarker, Latest: obj.IsLatest}
}

// sortNewestFirst orders versions by time, newest first; versions with the
// same time keep the store's order, which lists the newer first.
func sortNewestFirst(vs []remote.Version) {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].Modified.After(vs[j].Modified) })
}

// readOnlyHint says what to do instead of writing through an as-of view.
const readOnlyHint = "--as-of is read-only; to make the bucket look like that time, run escrow recover --as-of"

// View is the repository as it was at a time: a read-only Backend over a
// bucket with versioning. For each key it reads the newest version not
// newer than the time, and a key whose newest such version is a delete
// marker (or that had no version yet) does not exist. Versions written
// later, an attacker's overwrites and delete markers included, are
// invisible.
type View struct {
	b  *Backend
	at time.Time

	mu sync.Mutex
	// types maps each listed type's names to their version at the time;
	// built by one versioned listing of the type's folder and kept for the
	// View's life (what existed at a past time does not change).
	types map[remote.FileType]map[string]remote.Version
	// keys holds versions looked up one key at a time, for a type not
	// listed yet; ok is false for a key that did not exist.
	keys map[remote.Handle]lookup
	// lookups counts the single-key lookups per type: past
	// lookupsBeforeListing, the whole folder is listed instead (a restore
	// reads hundreds of packs by name, and a listing pages through a
	// thousand versions per request).
	lookups map[remote.FileType]int
}

const lookupsBeforeListing = 16

type lookup struct {
	v  remote.Version
	ok bool
}

var _ remote.Backend = (*View)(nil)

// AsOf returns the read-only view of the repository at time at. It fails
// when the bucket never had versioning: such a bucket keeps only current
// objects, so its past cannot be read.
func (b *Backend) AsOf(ctx context.Context, at time.Time) (*View, error) {
	if err := b.requireVersioning(ctx, "--as-of"); err != nil {
		return nil, err
	}
	return &View{b: b, at: at, types: map[remote.FileType]map[string]remote.Version{},
		keys: map[remote.Handle]lookup{}, lookups: map[remote.FileType]int{}}, nil
}

// requireVersioning fails unless versioning is or was on. Credentials that
// may not read the bucket's versioning setting (a host's put/get/list
// credential) get the benefit of the doubt: the versioned listing shows
// what there is.
func (b *Backend) requireVersioning(ctx context.Context, what string) error {
	cfg, err := b.client.GetBucketVersioning(ctx, b.cfg.Bucket)
	if err != nil {
		code := minio.ToErrorResponse(err)
		if code.StatusCode == http.StatusForbidden || code.Code == "AccessDenied" || code.Code == "NotImplemented" {
			return nil
		}
		return b.classify(ctx, "read the versioning setting of", b.cfg.Location(), err)
	}
	if !cfg.Enabled() && !cfg.Suspended() {
		return fmt.Errorf("%s needs a bucket with versioning; bucket %s has never had it, so it keeps no older versions to read (enable versioning, or create the repository with escrow init --object-lock, to be protected from now on): %w",
			what, b.cfg.Bucket, remote.ErrPermanent)
	}
	return nil
}

// At is the view's time.
func (v *View) At() time.Time { return v.at }

// Location is the store's address, the same as the Backend's: callers
// use it as an address (the recovery kit records it), and the time is in
// every error the View returns.
func (v *View) Location() string { return v.b.Location() }

// Close closes the underlying Backend.
func (v *View) Close() error { return v.b.Close() }

func (v *View) readOnly(op string, h remote.Handle) error {
	return fmt.Errorf("%s %s: %w: %s %s", op, h, remote.ErrPermanent, readOnlyHint, v.at.UTC().Format(time.RFC3339))
}

// Save refuses: the past cannot be written.
func (v *View) Save(_ context.Context, h remote.Handle, _ []byte) error {
	return v.readOnly("save", h)
}

// Remove refuses: the past cannot be written.
func (v *View) Remove(_ context.Context, h remote.Handle) error {
	return v.readOnly("remove", h)
}

// pick returns the version of a key at the time from its versions in the
// store's order (newest first).
func (v *View) pick(cur lookup, obj minio.ObjectInfo) lookup {
	if obj.LastModified.After(v.at) {
		return cur
	}
	if cur.ok && !obj.LastModified.After(cur.v.Modified) {
		return cur // the same time: the store lists the newer first
	}
	return lookup{v: version(obj), ok: true}
}

// find returns h's version at the time.
func (v *View) find(ctx context.Context, h remote.Handle) (remote.Version, bool, error) {
	key, err := v.b.key(h)
	if err != nil {
		return remote.Version{}, false, err
	}
	v.mu.Lock()
	if m, ok := v.types[h.Type]; ok {
		ver, ok := m[h.Name]
		v.mu.Unlock()
		return ver, ok && !ver.DeleteMarker, nil
	}
	if l, ok := v.keys[h]; ok {
		v.mu.Unlock()
		return l.v, l.ok && !l.v.DeleteMarker, nil
	}
	v.lookups[h.Type]++
	many := h.Type != remote.ConfigFile && v.lookups[h.Type] > lookupsBeforeListing
	v.mu.Unlock()
	if many {
		m, err := v.typeMap(ctx, h.Type)
		if err != nil {
			return remote.Version{}, false, err
		}
		ver, ok := m[h.Name]
		return ver, ok && !ver.DeleteMarker, nil
	}
	var l lookup
	err = v.b.listVersions(ctx, key, h.String(), func(obj minio.ObjectInfo) error {
		if obj.Key == key {
			l = v.pick(l, obj)
		}
		return nil
	})
	if err != nil {
		return remote.Version{}, false, err
	}
	v.mu.Lock()
	v.keys[h] = l
	v.mu.Unlock()
	return l.v, l.ok && !l.v.DeleteMarker, nil
}

func (v *View) notFound(op string, h remote.Handle) error {
	return fmt.Errorf("%s %s: %w: it did not exist at %s", op, h, remote.ErrNotFound, v.at.UTC().Format(time.RFC3339))
}

// Load reads h's version at the time.
func (v *View) Load(ctx context.Context, h remote.Handle, offset, length int64) (io.ReadCloser, error) {
	ver, ok, err := v.find(ctx, h)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	if !ok {
		return nil, v.notFound("load", h)
	}
	return v.b.load(ctx, h, ver.ID, offset, length)
}

// Stat returns the size of h's version at the time.
func (v *View) Stat(ctx context.Context, h remote.Handle) (remote.FileInfo, error) {
	ver, ok, err := v.find(ctx, h)
	if err != nil {
		return remote.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	if !ok {
		return remote.FileInfo{}, v.notFound("stat", h)
	}
	return remote.FileInfo{Name: h.Name, Size: ver.Size}, nil
}

// List calls fn for every object of type t that existed at the time.
func (v *View) List(ctx context.Context, t remote.FileType, fn func(remote.FileInfo) error) error {
	if t == remote.ConfigFile {
		fi, err := v.Stat(ctx, remote.Handle{Type: t})
		if remote.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return fn(fi)
	}
	m, err := v.typeMap(ctx, t)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(m))
	for name, ver := range m {
		if !ver.DeleteMarker {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if err := fn(remote.FileInfo{Name: name, Size: m[name].Size}); err != nil {
			return err
		}
	}
	return nil
}

// typeMap builds (once) the map of t's names to their versions at the time.
func (v *View) typeMap(ctx context.Context, t remote.FileType) (map[string]remote.Version, error) {
	switch t {
	case remote.PackFile, remote.KeyFile, remote.LockFile, remote.SnapshotFile, remote.IndexFile, remote.ReleaseFile, remote.HeartbeatFile:
	default:
		return nil, fmt.Errorf("list: %w: invalid file type %q", remote.ErrPermanent, t)
	}
	v.mu.Lock()
	m, ok := v.types[t]
	v.mu.Unlock()
	if ok {
		return m, nil
	}
	prefix := v.b.join(string(t)) + "/"
	picked := map[string]lookup{}
	err := v.b.listVersions(ctx, prefix, string(t), func(obj minio.ObjectInfo) error {
		name, ok := listedName(t, strings.TrimPrefix(obj.Key, prefix))
		if ok {
			picked[name] = v.pick(picked[name], obj)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m = make(map[string]remote.Version, len(picked))
	for name, l := range picked {
		if l.ok {
			m[name] = l.v
		}
	}
	v.mu.Lock()
	v.types[t] = m
	v.mu.Unlock()
	return m, nil
}

// Versions lists h's versions not newer than the time, newest first: the
// first is what Load reads, the rest are what a reader falls back to.
func (v *View) Versions(ctx context.Context, h remote.Handle) ([]remote.Version, error) {
	all, err := v.b.Versions(ctx, h)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, ver := range all {
		if !ver.Modified.After(v.at) {
			out = append(out, ver)
		}
	}
	return out, nil
}

// LoadVersion reads one version of h.
func (v *View) LoadVersion(ctx context.Context, h remote.Handle, versionID string, offset, length int64) (io.ReadCloser, error) {
	return v.b.LoadVersion(ctx, h, versionID, offset, length)
}

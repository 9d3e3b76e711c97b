package repo

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/remote"
)

// Version is the repository format version escrow writes.
const Version = 2

// Config is the repository's config file.
type Config struct {
	Version           int              `json:"version"`
	ID                string           `json:"id"`
	ChunkerPolynomial chunk.Polynomial `json:"chunker_polynomial"`
}

// Compression selects how blobs are compressed.
type Compression int

// Compression modes, as restic names them.
const (
	CompressionAuto Compression = iota // zstd at its default level
	CompressionOff
	CompressionMax
	// CompressionBetter is zstd's "better" level, for writers of data that
	// compresses very well in small blobs; not a repository-wide mode.
	CompressionBetter
	// CompressionStream picks a level per blob for a writer of one long
	// stream that is stored again and again (database dumps): see
	// streamLevels. Not a repository-wide mode.
	CompressionStream
)

// Options tune a repository handle. The zero value is usable.
type Options struct {
	// PackSize is the size at which a pack is sealed and uploaded.
	PackSize int
	// Uploads is the number of packs uploaded at once.
	Uploads int
	// Compression of blobs.
	Compression Compression
	// KDF sets scrypt's cost for new keys (tests lower it).
	KDF    KDFParams
	Logger *slog.Logger
	// Locks tunes locking (tests inject a clock).
	Locks LockOptions
}

// DefaultPackSize balances request count against memory: a pack is held in
// memory while it fills and while it uploads (a writer keeps Uploads+2 pack
// buffers of PackSize plus an eighth), and a restore reads up to a pack at a
// time per worker. 8 MiB keeps memory well below restic's on a small server;
// the benchmark in bench/ measures both.
const DefaultPackSize = 8 << 20

func (o *Options) fill() {
	if o.PackSize <= 0 {
		o.PackSize = DefaultPackSize
	}
	if o.Uploads <= 0 {
		// Each upload holds a whole pack in memory; on a small server the
		// cores, not the requests in flight, limit throughput.
		o.Uploads = min(max(2, runtime.GOMAXPROCS(0)), 8)
	}
	if o.KDF.N == 0 {
		o.KDF = DefaultKDFParams
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Locks.fill()
}

// Repository is an open repository: the backend, the master key and the
// config. The index is loaded on demand with LoadIndex.
type Repository struct {
	be    remote.Backend
	key   *Key
	keyID ID
	cfg   Config
	opts  Options
	codec *codec
	// encoders holds the encoders of levels other than codec's, made on
	// first use by encoder.
	encMu    sync.Mutex
	encoders map[zstd.EncoderLevel]*zstd.Encoder
	idx      *Index
	trees    *treePackCache
	// zbufs holds *[]byte scratch for decrypting compressed blobs.
	zbufs sync.Pool
	log   *slog.Logger
	// fb reads objects, falling back to older versions of overwritten ones.
	fb *fallback
	// locks is what this handle knows of lock files (lockscan.go).
	locks    *lockBook
	lockOpts LockOptions
}

// ErrAlreadyInitialized means init found a config file at the address.
var ErrAlreadyInitialized = remote.ErrExists

// Init creates a new repository in be, whose layout the backend has already
// created, protected by password.
func Init(ctx context.Context, be remote.Backend, password string, opts Options) (*Repository, error) {
	opts.fill()
	if _, err := be.Stat(ctx, remote.Handle{Type: remote.ConfigFile}); err == nil {
		return nil, fmt.Errorf("%s: %w", be.Location(), ErrAlreadyInitialized)
	} else if !remote.IsNotFound(err) {
		return nil, fmt.Errorf("check for an existing config: %w", err)
	}
	pol, err := chunk.RandomPolynomial()
	if err != nil {
		return nil, err
	}
	var rid [32]byte
	if _, err := rand.Read(rid[:]); err != nil {
		return nil, err
	}
	key, err := NewRandomKey()
	if err != nil {
		return nil, err
	}
	r, err := newRepository(be, key, Config{Version: Version, ID: ID(rid).String(), ChunkerPolynomial: pol}, opts)
	if err != nil {
		return nil, err
	}
	// The key file comes first: a config nobody can decrypt is useless,
	// while a key file without a config is just an unfinished init.
	if r.keyID, err = addKey(ctx, be, key, password, opts.KDF, KeyOptions{}); err != nil {
		return nil, err
	}
	if _, err := r.SaveJSON(ctx, remote.ConfigFile, r.cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// Open unlocks the repository in be with password and reads its config.
func Open(ctx context.Context, be remote.Backend, password string, opts Options) (*Repository, error) {
	opts.fill()
	if _, err := be.Stat(ctx, remote.Handle{Type: remote.ConfigFile}); err != nil {
		if remote.IsNotFound(err) {
			return nil, fmt.Errorf("no repository at %s (run `escrow init` to create one): %w", be.Location(), err)
		}
		return nil, fmt.Errorf("open %s: %w", be.Location(), err)
	}
	fb := newFallback(be, opts.Logger)
	key, keyID, err := searchKey(ctx, fb, password)
	if err != nil {
		return nil, err
	}
	r, err := newRepository(be, key, Config{}, opts)
	if err != nil {
		return nil, err
	}
	r.keyID, r.fb = keyID, fb
	if err := r.LoadJSON(ctx, remote.ConfigFile, ID{}, &r.cfg); err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if err := r.cfg.check(); err != nil {
		return nil, err
	}
	return r, nil
}

// check refuses a configuration escrow cannot work with.
func (c Config) check() error {
	if c.Version != 1 && c.Version != 2 {
		return fmt.Errorf("repository format version %d is not supported (escrow reads 1 and 2)", c.Version)
	}
	if c.ChunkerPolynomial == 0 || !c.ChunkerPolynomial.Irreducible() {
		return fmt.Errorf("config: chunker polynomial %v is not irreducible", c.ChunkerPolynomial)
	}
	return nil
}

func newRepository(be remote.Backend, key *Key, cfg Config, opts Options) (*Repository, error) {
	level := zstd.SpeedDefault
	if opts.Compression == CompressionMax {
		level = zstd.SpeedBestCompression
	}
	c, err := newCodec(level)
	if err != nil {
		return nil, err
	}
	return &Repository{be: be, key: key, cfg: cfg, opts: opts, codec: c, idx: NewIndex(), trees: newTreePackCache(treeCacheSize), log: opts.Logger,
		fb: newFallback(be, opts.Logger), locks: newLockBook(), lockOpts: opts.Locks}, nil
}

// Close releases the repository's resources (not the backend).
func (r *Repository) Close() {
	r.codec.close()
	r.encMu.Lock()
	defer r.encMu.Unlock()
	for _, e := range r.encoders {
		_ = e.Close()
	}
	r.encoders = nil
}

// encoder returns the encoder of level, shared by every writer of r.
func (r *Repository) encoder(level zstd.EncoderLevel) (*zstd.Encoder, error) {
	if level == r.codec.level {
		return r.codec.enc, nil
	}
	r.encMu.Lock()
	defer r.encMu.Unlock()
	if e := r.encoders[level]; e != nil {
		return e, nil
	}
	e, err := newEncoder(level)
	if err != nil {
		return nil, fmt.Errorf("zstd encoder at level %s: %w", level, err)
	}
	if r.encoders == nil {
		r.encoders = map[zstd.EncoderLevel]*zstd.Encoder{}
	}
	r.encoders[level] = e
	return e, nil
}

// Backend returns the storage the repository lives in.
func (r *Repository) Backend() remote.Backend { return r.be }

// Config returns the repository config.
func (r *Repository) Config() Config { return r.cfg }

// Key returns the master key.
func (r *Repository) Key() *Key { return r.key }

// KeyID is the key file the repository was opened with.
func (r *Repository) KeyID() ID { return r.keyID }

// Index returns the master index (empty until LoadIndex).
func (r *Repository) Index() *Index { return r.idx }

// List returns the IDs of every object of type t. Names that are not IDs
// are reported to the logger and skipped.
func (r *Repository) List(ctx context.Context, t remote.FileType) ([]ID, error) {
	var ids []ID
	err := r.be.List(ctx, t, func(fi remote.FileInfo) error {
		id, err := ParseID(fi.Name)
		if err != nil {
			r.log.Warn("ignoring object with an invalid name", "type", t, "name", fi.Name)
			return nil
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", t, err)
	}
	return ids, nil
}

// ResetIndex empties the in-memory index. A holder of a shared lock that
// gave way to an exclusive one (prune) calls it before loading the index
// again: blobs the old index lists may have been removed or repacked, and
// deduplicating against them would lose data.
func (r *Repository) ResetIndex() {
	r.idx.reset()
	r.trees = newTreePackCache(treeCacheSize)
}

// LoadIndex reads every index file into the master index. Files that cannot
// be loaded are skipped and reported together in the returned error, so the
// caller decides: a backup can go on (it only deduplicates less), while
// check reports each one.
func (r *Repository) LoadIndex(ctx context.Context) error {
	ids, err := r.List(ctx, remote.IndexFile)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, id := range ids {
		g.Go(func() error {
			var f indexJSON
			err := r.LoadJSON(gctx, remote.IndexFile, id, &f)
			if err == nil {
				if verr := r.idx.addIndexFile(&f); verr != nil {
					err = fmt.Errorf("%w: %v", ErrCorrupt, verr)
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				mu.Lock()
				errs = append(errs, fmt.Errorf("index file %s: %w", id.Str(), err))
				mu.Unlock()
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

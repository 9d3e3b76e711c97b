package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/remote"
)

// Writer adds blobs to the repository. Blobs are compressed and encrypted in
// the caller's goroutine (so callers on several cores work in parallel),
// gathered into one open pack per blob type, and uploaded by a bounded set of
// uploader goroutines. Write order: a pack is uploaded before any index file
// lists it, and Close writes the index before it returns, so a snapshot saved
// after Close only references indexed blobs in stored packs.
type Writer struct {
	r   *Repository
	ctx context.Context // cancelled when an upload fails
	g   *errgroup.Group

	uploads chan *packer

	mu        sync.Mutex
	open      [3]*packer // indexed by BlobType
	pending   map[BlobHandle]struct{}
	unindexed []indexPackJSON // uploaded packs not yet listed in an index file
	lastIndex time.Time

	stats WriterStats
	// Hooks for crash tests: called after a pack is stored and after an
	// index file is stored. Nil in production.
	afterPack, afterIndex func()
}

// WriterStats counts what a Writer added.
type WriterStats struct {
	DataBlobs, TreeBlobs atomic.Int64
	// DataAdded is plaintext bytes of new blobs; DataAddedPacked what they
	// take in the repository after compression and encryption.
	DataAdded, DataAddedPacked atomic.Int64
	Packs                      atomic.Int64
}

// indexEvery bounds the work lost if the process dies: uploaded packs are
// listed in an index file at least this often, so a re-run finds their blobs.
const (
	indexEveryPacks = 32
	indexEveryTime  = 2 * time.Minute
)

type packer struct {
	typ   BlobType
	buf   []byte
	blobs []PackedBlob
}

// NewWriter starts the uploaders. Close (or Abort) must be called.
func (r *Repository) NewWriter(ctx context.Context) *Writer {
	g, gctx := errgroup.WithContext(ctx)
	w := &Writer{
		r: r, ctx: gctx, g: g,
		uploads:   make(chan *packer),
		pending:   map[BlobHandle]struct{}{},
		lastIndex: time.Now(),
	}
	for i := 0; i < r.opts.Uploads; i++ {
		g.Go(w.uploader)
	}
	return w
}

// Stats returns the writer's counters.
func (w *Writer) Stats() *WriterStats { return &w.stats }

// SaveBlob stores plaintext as a blob of type t unless the repository (or
// this writer) already has it. It returns the blob's ID and whether it was new.
func (w *Writer) SaveBlob(ctx context.Context, t BlobType, plaintext []byte) (ID, bool, error) {
	id := Hash(plaintext)
	h := BlobHandle{ID: id, Type: t}
	if err := w.ctx.Err(); err != nil {
		return id, false, w.failure(err)
	}
	w.mu.Lock()
	_, inFlight := w.pending[h]
	if inFlight || w.r.idx.Has(h) {
		w.mu.Unlock()
		return id, false, nil
	}
	w.pending[h] = struct{}{}
	w.mu.Unlock()

	sealed, plainLen := w.r.sealBlob(plaintext)
	pb := PackedBlob{BlobHandle: h, Length: uint32(len(sealed)), UncompressedLength: plainLen}

	w.mu.Lock()
	p := w.open[t]
	if p == nil {
		p = &packer{typ: t, buf: make([]byte, 0, w.r.opts.PackSize+len(sealed)+64<<10)}
		w.open[t] = p
	}
	pb.Offset = uint32(len(p.buf))
	p.buf = append(p.buf, sealed...)
	p.blobs = append(p.blobs, pb)
	var full *packer
	if len(p.buf) >= w.r.opts.PackSize {
		full, w.open[t] = p, nil
	}
	w.mu.Unlock()

	if t == DataBlob {
		w.stats.DataBlobs.Add(1)
	} else {
		w.stats.TreeBlobs.Add(1)
	}
	w.stats.DataAdded.Add(int64(len(plaintext)))
	w.stats.DataAddedPacked.Add(int64(len(sealed)))

	if full != nil {
		if err := w.send(ctx, full); err != nil {
			return id, true, err
		}
	}
	return id, true, nil
}

func (w *Writer) send(ctx context.Context, p *packer) error {
	select {
	case w.uploads <- p:
		return nil
	case <-w.ctx.Done():
		return w.failure(w.ctx.Err())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failure returns the error that stopped the uploaders, rather than the bare
// "context canceled" it caused.
func (w *Writer) failure(err error) error {
	if cause := context.Cause(w.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// sealBlob compresses (when it pays) and encrypts a blob. It returns the
// sealed bytes and the plaintext length if compressed, else 0.
func (r *Repository) sealBlob(plaintext []byte) ([]byte, uint32) {
	if r.cfg.Version >= 2 && r.opts.Compression != CompressionOff && len(plaintext) > 0 {
		z := r.codec.enc.EncodeAll(plaintext, make([]byte, 0, len(plaintext)/2+64))
		if len(z) < len(plaintext) {
			return r.key.Seal(make([]byte, 0, len(z)+overhead), z), uint32(len(plaintext))
		}
	}
	return r.key.Seal(make([]byte, 0, len(plaintext)+overhead), plaintext), 0
}

// seal finishes a pack: appends the encrypted header and its length.
func (r *Repository) seal(p *packer) (ID, []byte) {
	hdr := r.key.Seal(nil, encodeHeader(p.blobs))
	p.buf = append(p.buf, hdr...)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(hdr)))
	return Hash(p.buf), p.buf
}

func (w *Writer) uploader() error {
	for {
		select {
		case <-w.ctx.Done():
			return nil
		case p, ok := <-w.uploads:
			if !ok {
				return nil
			}
			if err := w.upload(p); err != nil {
				return err
			}
		}
	}
}

func (w *Writer) upload(p *packer) error {
	id, data := w.r.seal(p)
	h := remote.Handle{Type: remote.PackFile, Name: id.String()}
	if err := w.r.be.Save(w.ctx, h, data); err != nil {
		return fmt.Errorf("upload pack %s (%d bytes): %w", id.Str(), len(data), err)
	}
	w.stats.Packs.Add(1)
	if w.afterPack != nil {
		w.afterPack()
	}
	ip := indexPackJSON{ID: id, Blobs: make([]indexBlobJSON, len(p.blobs))}
	for i := range p.blobs {
		p.blobs[i].PackID = id
		b := p.blobs[i]
		ip.Blobs[i] = indexBlobJSON{ID: b.ID, Type: b.Type, Offset: b.Offset, Length: b.Length, UncompressedLength: b.UncompressedLength}
	}
	w.mu.Lock()
	w.r.idx.AddPack(id, p.blobs)
	for _, b := range p.blobs {
		delete(w.pending, b.BlobHandle)
	}
	w.unindexed = append(w.unindexed, ip)
	due := len(w.unindexed) >= indexEveryPacks || time.Since(w.lastIndex) >= indexEveryTime
	w.mu.Unlock()
	if due {
		return w.flushIndex(w.ctx)
	}
	return nil
}

// flushIndex writes index files for all uploaded but unindexed packs.
func (w *Writer) flushIndex(ctx context.Context) error {
	w.mu.Lock()
	packs := w.unindexed
	w.unindexed = nil
	w.lastIndex = time.Now()
	w.mu.Unlock()
	for len(packs) > 0 {
		var f indexJSON
		n := 0
		for len(packs) > 0 && (n == 0 || n+len(packs[0].Blobs) <= maxIndexBlobs) {
			n += len(packs[0].Blobs)
			f.Packs = append(f.Packs, packs[0])
			packs = packs[1:]
		}
		if _, err := w.r.SaveJSON(ctx, remote.IndexFile, &f); err != nil {
			// Put the packs back so a later flush can still list them.
			w.mu.Lock()
			w.unindexed = append(append(w.unindexed, f.Packs...), packs...)
			w.mu.Unlock()
			return fmt.Errorf("write index: %w", err)
		}
		if w.afterIndex != nil {
			w.afterIndex()
		}
	}
	return nil
}

// Close seals and uploads the open packs, waits for every upload and writes
// the index. Only after Close returns nil may a snapshot reference the blobs.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	open := w.open
	w.open = [3]*packer{}
	w.mu.Unlock()
	var err error
	for _, p := range open {
		if p != nil && err == nil {
			err = w.send(ctx, p)
		}
	}
	close(w.uploads)
	if gerr := w.g.Wait(); gerr != nil && err == nil {
		err = gerr
	}
	// Index what did reach the store even when the run failed, so that the
	// next run does not upload it again. Use a context that survives the
	// cancellation that may have stopped us.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if ferr := w.flushIndex(fctx); ferr != nil && err == nil {
		err = ferr
	}
	if err == nil {
		err = ctx.Err() // the caller's context ended: the blobs may be incomplete
	}
	return err
}

// SaveTree encodes and stores a tree blob.
func (w *Writer) SaveTree(ctx context.Context, t *Tree) (ID, error) {
	buf, err := t.encode()
	if err != nil {
		return ID{}, err
	}
	id, _, err := w.SaveBlob(ctx, TreeBlob, buf)
	return id, err
}

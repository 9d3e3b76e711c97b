package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/internal/failpoint"
	"github.com/escrow-backup/escrow/remote"
)

// Writer adds blobs to the repository. Blobs are compressed and encrypted in
// the caller's goroutine (so callers on several cores work in parallel),
// gathered into one open pack per blob type, and uploaded by a bounded set of
// uploader goroutines. Write order: a pack is uploaded before any index file
// lists it, and Close writes the index before it returns, so a snapshot saved
// after Close only references indexed blobs in stored packs.
//
// Memory: a blob is compressed into one of a few scratch buffers and
// encrypted straight into its place in the pack, and pack buffers are reused
// from a fixed set (one open pack per blob type plus one per upload), so a
// backup allocates almost nothing per blob and its memory stays flat.
type Writer struct {
	r   *Repository
	enc *zstd.Encoder // compresses blobs, unless levels picks per blob
	// levels picks each data blob's level (CompressionStream), or is nil.
	levels *streamLevels
	ctx    context.Context // cancelled when an upload fails
	g      *errgroup.Group

	uploads chan *packer
	bufs    *bufPool // pack buffers; waiting for one is the backpressure on callers
	scratch *bufPool // compression output

	mu        sync.Mutex
	open      [3]*packer // indexed by BlobType
	pending   map[BlobHandle]struct{}
	unindexed []indexPackJSON // uploaded packs not yet listed in an index file
	lastIndex time.Time

	stats WriterStats
	// repack makes the writer store every blob it is given once, even
	// if the master index already lists it elsewhere (prune copies used
	// blobs out of packs it is about to delete).
	repack bool
	// indexFiles are the index files this writer stored.
	indexFiles []ID
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

// packer is a pack being filled. Blobs are reserved in buf under Writer.mu
// and encrypted into their place outside it; writes counts those still being
// encrypted, and the uploader waits for them before sealing the pack. buf's
// capacity always has room for the header of the blobs reserved so far, so
// neither reserving nor sealing ever reallocates it.
type packer struct {
	typ    BlobType
	buf    []byte
	blobs  []PackedBlob
	hdr    int // plaintext header size for blobs
	writes sync.WaitGroup
}

// room reports whether a sealed blob of n bytes with a header entry of
// entry bytes fits in p's buffer, header included, without taking the pack
// past limit bytes. An empty pack takes any blob its buffer holds.
func (p *packer) room(n, entry, limit int) bool {
	size := len(p.buf) + n + p.hdr + entry + overhead + headerLengthSize
	return size <= cap(p.buf) && (size <= limit || len(p.blobs) == 0)
}

// NewWriter starts the uploaders. Close (or Abort) must be called.
func (r *Repository) NewWriter(ctx context.Context) *Writer {
	w, _ := r.NewWriterCompression(ctx, CompressionAuto) // the default codec exists already
	return w
}

// NewWriterCompression is NewWriter with blobs compressed at level c
// (CompressionStream for dumps); the repository's mode still decides
// whether blobs are compressed at all.
func (r *Repository) NewWriterCompression(ctx context.Context, c Compression) (*Writer, error) {
	enc := r.codec.enc
	var levels *streamLevels
	var err error
	switch c {
	case CompressionBetter:
		enc, err = r.encoder(zstd.SpeedBetterCompression)
	case CompressionStream:
		levels, err = r.newStreamLevels()
	}
	if err != nil {
		return nil, err
	}
	g, gctx := errgroup.WithContext(ctx)
	// One open pack per blob type (data and tree) and one per upload.
	nbufs := r.opts.Uploads + 2
	w := &Writer{
		r: r, enc: enc, levels: levels, ctx: gctx, g: g,
		uploads:   make(chan *packer, nbufs),
		bufs:      newBufPool(nbufs),
		scratch:   newBufPool(encoderCount()),
		pending:   map[BlobHandle]struct{}{},
		lastIndex: time.Now(),
	}
	for i := 0; i < r.opts.Uploads; i++ {
		g.Go(w.uploader)
	}
	return w, nil
}

// Stats returns the writer's counters.
func (w *Writer) Stats() *WriterStats { return &w.stats }

// SaveBlob stores plaintext as a blob of type t unless the repository (or
// this writer) already has it. It returns the blob's ID and whether it was new.
// plaintext is not used after SaveBlob returns.
func (w *Writer) SaveBlob(ctx context.Context, t BlobType, plaintext []byte) (ID, bool, error) {
	id := Hash(plaintext)
	h := BlobHandle{ID: id, Type: t}
	if err := w.ctx.Err(); err != nil {
		return id, false, w.failure(err)
	}
	w.mu.Lock()
	_, inFlight := w.pending[h]
	if inFlight || (!w.repack && w.r.idx.Has(h)) {
		w.mu.Unlock()
		if w.levels != nil && t == DataBlob {
			w.levels.known.Add(1)
		}
		return id, false, nil
	}
	w.pending[h] = struct{}{}
	w.mu.Unlock()

	if err := w.save(ctx, h, plaintext); err != nil {
		// Not stored: a later SaveBlob of the same content must not take
		// it for a duplicate.
		w.mu.Lock()
		delete(w.pending, h)
		w.mu.Unlock()
		return id, false, err
	}
	return id, true, nil
}

func (w *Writer) save(ctx context.Context, h BlobHandle, plaintext []byte) error {
	z, err := w.scratch.get(ctx, w.ctx)
	if err != nil {
		return w.failure(err)
	}
	defer func() { w.scratch.put(z) }()
	payload, plainLen := plaintext, uint32(0)
	if w.r.compresses() && len(plaintext) > 0 {
		if bound := w.enc.MaxEncodedSize(len(plaintext)); cap(z) < bound {
			z = make([]byte, 0, bound)
		}
		if w.levels != nil && h.Type == DataBlob {
			z = w.levels.compress(plaintext, z[:0])
		} else {
			z = w.enc.EncodeAll(plaintext, z[:0])
		}
		if len(z) < len(plaintext) {
			payload, plainLen = z, uint32(len(plaintext))
		}
	}
	n := len(payload) + overhead
	entry := entrySize
	if plainLen != 0 {
		entry = entrySizeZ
	}
	p, region, full, err := w.reserve(ctx, PackedBlob{BlobHandle: h, Length: uint32(n), UncompressedLength: plainLen}, entry)
	if err != nil {
		return err
	}
	w.r.key.Seal(region, payload)
	p.writes.Done()

	if h.Type == DataBlob {
		w.stats.DataBlobs.Add(1)
	} else {
		w.stats.TreeBlobs.Add(1)
	}
	w.stats.DataAdded.Add(int64(len(plaintext)))
	w.stats.DataAddedPacked.Add(int64(n))

	if full != nil {
		w.send(full)
	}
	return nil
}

// reserve finds room for blob pb in the open pack of its type, opening a
// new pack when there is none or the blob does not fit. It returns the pack,
// with one more write in progress, the empty slice (capacity pb.Length) to
// encrypt the blob into, and the pack if this blob filled it.
func (w *Writer) reserve(ctx context.Context, pb PackedBlob, entry int) (*packer, []byte, *packer, error) {
	n := int(pb.Length)
	for {
		var full *packer
		w.mu.Lock()
		p := w.open[pb.Type]
		if p != nil && !p.room(n, entry, w.packLimit()) {
			full, p, w.open[pb.Type] = p, nil, nil
		}
		if p != nil {
			off := len(p.buf)
			p.buf = p.buf[:off+n]
			region := p.buf[off : off : off+n]
			pb.Offset = uint32(off)
			p.blobs = append(p.blobs, pb)
			p.hdr += entry
			p.writes.Add(1)
			if len(p.buf) >= w.r.opts.PackSize {
				full, w.open[pb.Type] = p, nil
			}
			w.mu.Unlock()
			return p, region, full, nil
		}
		w.mu.Unlock()

		// Queue the full pack before waiting for a buffer: its upload is
		// what frees one.
		if full != nil {
			w.send(full)
		}
		buf, err := w.bufs.get(ctx, w.ctx)
		if err != nil {
			return nil, nil, nil, w.failure(err)
		}
		w.mu.Lock()
		if w.open[pb.Type] == nil {
			size := max(w.packLimit(), n+entry+overhead+headerLengthSize)
			if cap(buf) < size {
				buf = make([]byte, 0, size)
			}
			w.open[pb.Type] = &packer{typ: pb.Type, buf: buf[:0]}
			buf = nil
		}
		w.mu.Unlock()
		if buf != nil {
			w.bufs.put(buf) // another caller opened a pack meanwhile
		}
	}
}

// packLimit is the most a pack of several blobs may hold. Packs are cut
// once they reach PackSize; the extra eighth lets most blobs that arrive
// near the end still fit, and a blob that does not starts the next pack.
// A blob bigger than the limit gets a pack (and a buffer) of its own size.
func (w *Writer) packLimit() int { return w.r.opts.PackSize + w.r.opts.PackSize/8 }

// send queues a full pack for upload. It never blocks: the queue has room
// for every pack buffer, and each queued pack holds one. It never fails
// either, so a blob that made it into a pack is never dropped by its caller
// giving up while other callers go on (and deduplicate against it).
func (w *Writer) send(p *packer) { w.uploads <- p }

// failure returns the error that stopped the uploaders, rather than the bare
// "context canceled" it caused.
func (w *Writer) failure(err error) error {
	if cause := context.Cause(w.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// compresses reports whether blobs are compressed.
func (r *Repository) compresses() bool {
	return r.cfg.Version >= 2 && r.opts.Compression != CompressionOff
}

// seal finishes a pack: appends the encrypted header and its length, in
// the room reserved for them.
func (r *Repository) seal(p *packer) (ID, []byte) {
	start := len(p.buf)
	p.buf = r.key.Seal(p.buf, encodeHeader(p.blobs))
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(p.buf)-start))
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
	p.writes.Wait()
	id, data := w.r.seal(p)
	failpoint.Hit(failpoint.PackSealed)
	h := remote.Handle{Type: remote.PackFile, Name: id.String()}
	if err := w.r.be.Save(w.ctx, h, data); err != nil {
		// The buffer is not reused: the transport may still be reading it.
		w.bufs.put(nil)
		return fmt.Errorf("upload pack %s (%d bytes): %w", id.Str(), len(data), err)
	}
	// A stored object means the store has read all of data.
	w.bufs.put(p.buf[:0])
	p.buf = nil
	w.stats.Packs.Add(1)
	failpoint.Hit(failpoint.PackUploaded)
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
		id, err := w.r.SaveJSON(ctx, remote.IndexFile, &f)
		if err != nil {
			// Put the packs back so a later flush can still list them.
			w.mu.Lock()
			w.unindexed = append(append(w.unindexed, f.Packs...), packs...)
			w.mu.Unlock()
			return fmt.Errorf("write index: %w", err)
		}
		w.mu.Lock()
		w.indexFiles = append(w.indexFiles, id)
		w.mu.Unlock()
		failpoint.Hit(failpoint.IndexUploaded)
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
	for _, p := range open {
		if p != nil {
			w.send(p)
		}
	}
	close(w.uploads)
	err := w.g.Wait()
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

// bufPool hands out up to a fixed number of reusable buffers and blocks
// while all are in use. It gives out the most recently returned buffer
// first, so a buffer is only allocated when that many are in use at once
// and the buffers in use stay few and warm. Buffers start nil; their users
// grow them as needed.
type bufPool struct {
	sem chan struct{} // one token per buffer handed out

	mu   sync.Mutex
	free [][]byte
}

func newBufPool(n int) *bufPool {
	return &bufPool{sem: make(chan struct{}, n)}
}

// get waits for a buffer until either context ends.
func (p *bufPool) get(ctx, wctx context.Context) ([]byte, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wctx.Done():
		return nil, wctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b, nil
	}
	return nil, nil
}

// put returns a buffer taken with get, or nil to drop it.
func (p *bufPool) put(b []byte) {
	if b != nil {
		p.mu.Lock()
		p.free = append(p.free, b)
		p.mu.Unlock()
	}
	<-p.sem
}

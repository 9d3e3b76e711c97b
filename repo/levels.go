package repo

import (
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// streamLevels picks the zstd level of each new data blob of a stream that
// is stored again and again, such as a database dump, where what a blob
// costs depends on which of two kinds of new blob it is:
//
//   - Bulk: while most of the stream's blobs so far were new (its first
//     dump, or one that shares little with the last), compression is most
//     of the work per byte, and a tool writing into a pipe waits for it;
//     these bytes are stored once. They get zstd's fastest level, which on
//     dumps stores 3-5% more than the default for 60% of its CPU.
//   - Change: once most blobs were already stored, the new ones are the
//     dump's changes, few, and stored again with every dump. They get the
//     default level, or "better" where it pays: better costs 1.4 times the
//     default's CPU and saves ~5% on rows of numbers (pgbench) but nothing
//     on prose (a site's posts), so every probeEvery-th change blob is
//     compressed at both and the stream keeps to better only while better
//     saves at least 2% on the probed blobs.
//
// The choice depends on the stream's content and the index, not on timing,
// so the same dumps into the same repository store the same bytes.
type streamLevels struct {
	fast, normal, better *zstd.Encoder

	// known and fresh count the stream's data blobs found stored and those
	// being stored.
	known, fresh atomic.Int64
	// changes counts change blobs; every probeEvery-th is probed.
	changes atomic.Int64

	mu sync.Mutex
	// probe is scratch for the second encoding of a probed blob.
	probe []byte
	// normalBytes and betterBytes are the probed blobs' sizes at each level.
	normalBytes, betterBytes int64
	useBetter                bool
}

// probeEvery is how often a change blob is compressed at both levels: one
// in 16 adds 1/16 of the better level's cost to the default's.
const probeEvery = 16

func (r *Repository) newStreamLevels() (*streamLevels, error) {
	l := &streamLevels{}
	var err error
	if l.fast, err = r.encoder(zstd.SpeedFastest); err != nil {
		return nil, err
	}
	if l.normal, err = r.encoder(zstd.SpeedDefault); err != nil {
		return nil, err
	}
	if l.better, err = r.encoder(zstd.SpeedBetterCompression); err != nil {
		return nil, err
	}
	return l, nil
}

// compress appends plaintext, compressed at the level its kind calls for,
// to dst (which has room for the largest encoding) and returns it.
func (l *streamLevels) compress(plaintext, dst []byte) []byte {
	// Counted before compressing, so that blobs saved at once see nearly the
	// counts they would one after the other.
	fresh, known := l.fresh.Add(1), l.known.Load()
	if fresh-1 > known {
		return l.fast.EncodeAll(plaintext, dst)
	}
	if l.changes.Add(1)%probeEvery != 1 {
		l.mu.Lock()
		better := l.useBetter
		l.mu.Unlock()
		if better {
			return l.better.EncodeAll(plaintext, dst)
		}
		return l.normal.EncodeAll(plaintext, dst)
	}
	// A probe: both levels, keeping the smaller.
	dst = l.normal.EncodeAll(plaintext, dst)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probe = l.better.EncodeAll(plaintext, l.probe[:0])
	l.normalBytes += int64(len(dst))
	l.betterBytes += int64(len(l.probe))
	l.useBetter = l.betterBytes*100 <= l.normalBytes*98
	if len(l.probe) < len(dst) {
		dst = append(dst[:0], l.probe...)
	}
	return dst
}

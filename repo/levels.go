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
//     these bytes are stored once. They get zstd's fastest level, which
//     costs 60% of the default's CPU for 0-5% more bytes on dumps.
//   - Change: once most blobs were already stored, the new ones are the
//     dump's changes, few, and stored again with every dump. They get the
//     cheapest level that stores them within 1% of the smallest, as probes
//     find: every probeEvery-th change blob is compressed at all three
//     levels (fastest, default, better: each costs about 1.5 times the
//     last) and stored at the smallest. Which wins depends on the content:
//     on a site's prose the default stores 5% less than the fastest level
//     and better nothing more; on pgbench's rows, which compress 100 to 1,
//     the fastest stores least.
//
// The choice depends on the stream's content and the index, not on timing,
// so the same dumps into the same repository store nearly the same bytes
// (blobs sealed at once may swap counts).
type streamLevels struct {
	// enc holds the encoders from the cheapest to the dearest.
	enc [3]*zstd.Encoder

	// known and fresh count the stream's data blobs found stored and those
	// being stored.
	known, fresh atomic.Int64
	// changes counts change blobs; every probeEvery-th is probed.
	changes atomic.Int64

	mu sync.Mutex
	// probe is scratch for the other encodings of a probed blob.
	probe []byte
	// probed is the probed blobs' bytes at each level; level the one change
	// blobs get.
	probed [3]int64
	level  int
}

// probeEvery is how often a change blob is compressed at every level: one
// in 16 adds about a fifth of the chosen level's cost.
const probeEvery = 16

func (r *Repository) newStreamLevels() (*streamLevels, error) {
	l := &streamLevels{}
	for i, level := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression} {
		e, err := r.encoder(level)
		if err != nil {
			return nil, err
		}
		l.enc[i] = e
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
		return l.enc[0].EncodeAll(plaintext, dst)
	}
	if l.changes.Add(1)%probeEvery != 1 {
		l.mu.Lock()
		level := l.level
		l.mu.Unlock()
		return l.enc[level].EncodeAll(plaintext, dst)
	}
	// A probe: every level, keeping the smallest.
	dst = l.enc[0].EncodeAll(plaintext, dst)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probed[0] += int64(len(dst))
	for i := 1; i < len(l.enc); i++ {
		l.probe = l.enc[i].EncodeAll(plaintext, l.probe[:0])
		l.probed[i] += int64(len(l.probe))
		if len(l.probe) < len(dst) {
			dst = append(dst[:0], l.probe...)
		}
	}
	least := min(l.probed[0], l.probed[1], l.probed[2])
	for i, n := range l.probed {
		if n*100 <= least*101 {
			l.level = i
			break
		}
	}
	return dst
}

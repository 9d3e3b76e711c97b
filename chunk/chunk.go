// Package chunk splits a byte stream into content-defined chunks.
//
// Cut points depend only on the content (a rolling Rabin fingerprint over a
// 64-byte window with the repository's polynomial), so an insertion in the
// middle of a large file or dump changes only the chunks around it and the
// rest deduplicates against earlier snapshots.
//
// A splitter has a Shape: it skips the first Min bytes of a chunk, then cuts
// where the fingerprint's low Bits bits are zero, or at Max bytes at the
// latest; a stream shorter than the minimum is one chunk. Files are split
// with restic's shape (Average(DefaultAverage): 512 KiB to 8 MiB, about
// 1.5 MiB on average). The repository format leaves chunk sizes to the
// writer, and restic reads blobs of any size; but a stream only
// deduplicates against streams split with the same shape and polynomial.
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

// Shape is how a splitter cuts: a chunk has at least Min bytes, then ends
// where the fingerprint's low Bits bits are zero, or at Max bytes. Chunks
// are about Min + 2^Bits bytes on average.
//
// The fingerprint is computed only past Min, so of the two shapes with the
// same mean, the one with the larger Min costs less CPU: restic's shape
// fingerprints two thirds of every chunk, a shape with Min = 3 * 2^Bits a
// quarter. What it gives up is how soon cut points realign after an
// insertion: the cut after one is the first candidate past Min, so the
// larger Min is against 2^Bits, the more chunks pass before the old cut
// points are met again. docs/databases.md has the measurements for dumps.
type Shape struct {
	Min, Max uint
	Bits     int
}

// Average returns restic's shape scaled to average, a power of two: chunks
// of average/2 to 8*average bytes, cut where log2(average) bits are zero,
// about 1.5*average on average.
func Average(average int) Shape {
	if average <= 0 {
		return Shape{}
	}
	return Shape{Min: uint(average / 2), Max: uint(average) * 8, Bits: bits.TrailingZeros(uint(average))}
}

// Mean is about the average length of the shape's chunks.
func (s Shape) Mean() int { return int(s.Min) + 1<<s.Bits }

// Validate checks that a splitter can cut with the shape: 2^Bits from
// MinAverage to DefaultAverage, Min at least half of that and Max from
// Min + 2 * 2^Bits to MaxSize.
func (s Shape) Validate() error {
	if s.Bits < bits.TrailingZeros(MinAverage) || s.Bits > bits.TrailingZeros(DefaultAverage) {
		return fmt.Errorf("chunk shape %+v: 2^Bits must be from %d to %d", s, MinAverage, DefaultAverage)
	}
	avg := 1 << s.Bits
	switch {
	case s.Min < uint(avg/2):
		return fmt.Errorf("chunk shape %+v: Min must be at least 2^Bits/2", s)
	case s.Max < s.Min+2*uint(avg) || s.Max > MaxSize:
		return fmt.Errorf("chunk shape %+v: Max must be from Min + 2*2^Bits to %d", s, MaxSize)
	}
	return nil
}

// Splitter cuts a reader into chunks. It is not safe for concurrent use;
// reuse one per goroutine with Reset to avoid reallocating its tables.
type Splitter struct {
	c     *chunker.Chunker
	shape Shape
}

// New returns a Splitter reading rd with polynomial pol, at the default
// average.
func New(rd io.Reader, pol Polynomial) *Splitter {
	s, _ := NewAverage(rd, pol, DefaultAverage)
	return s
}

// NewAverage returns a Splitter reading rd with polynomial pol whose chunks
// are about 1.5*average bytes long (average/2 to 8*average): restic's shape,
// scaled. average must be a power of two from MinAverage to DefaultAverage.
func NewAverage(rd io.Reader, pol Polynomial, average int) (*Splitter, error) {
	if average < MinAverage || average > DefaultAverage || average&(average-1) != 0 {
		return nil, fmt.Errorf("chunk average %d: want a power of two from %d to %d", average, MinAverage, DefaultAverage)
	}
	return NewShape(rd, pol, Average(average))
}

// NewShape returns a Splitter reading rd with polynomial pol that cuts
// chunks of the given shape.
func NewShape(rd io.Reader, pol Polynomial, shape Shape) (*Splitter, error) {
	if err := shape.Validate(); err != nil {
		return nil, err
	}
	s := &Splitter{shape: shape}
	s.c = chunker.NewWithBoundaries(rd, pol, shape.Min, shape.Max)
	s.c.SetAverageBits(shape.Bits)
	return s, nil
}

// Reset makes the splitter read a new stream, with the same chunk sizes.
func (s *Splitter) Reset(rd io.Reader, pol Polynomial) {
	// The chunker's Reset restores its default sizes: set them again.
	s.c.ResetWithBoundaries(rd, pol, s.shape.Min, s.shape.Max)
	s.c.SetAverageBits(s.shape.Bits)
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

// Package chunk splits a byte stream into content-defined chunks.
//
// Cut points depend only on the content (a rolling Rabin fingerprint over a
// 64-byte window with the repository's polynomial), so an insertion in the
// middle of a large file or dump changes only the chunks around it and the
// rest deduplicates against earlier snapshots. Chunks are 512 KiB to 8 MiB,
// about 1 MiB on average; a stream shorter than the minimum is one chunk.
package chunk

import (
	"io"

	"github.com/restic/chunker"
)

// Polynomial is the irreducible polynomial that parametrises the splitter.
// Each repository has its own, chosen at random when it is created.
type Polynomial = chunker.Pol

// MinSize and MaxSize bound the length of a chunk.
const (
	MinSize = chunker.MinSize
	MaxSize = chunker.MaxSize
)

// RandomPolynomial returns a new random irreducible polynomial.
func RandomPolynomial() (Polynomial, error) { return chunker.RandomPolynomial() }

// Splitter cuts a reader into chunks. It is not safe for concurrent use;
// reuse one per goroutine with Reset to avoid reallocating its tables.
type Splitter struct {
	c *chunker.Chunker
}

// New returns a Splitter reading rd with polynomial pol.
func New(rd io.Reader, pol Polynomial) *Splitter {
	return &Splitter{c: chunker.New(rd, pol)}
}

// Reset makes the splitter read a new stream.
func (s *Splitter) Reset(rd io.Reader, pol Polynomial) { s.c.Reset(rd, pol) }

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

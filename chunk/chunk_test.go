package chunk

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"
)

const testPol = Polynomial(0x3DA3358B4DC173)

func split(t *testing.T, data []byte) [][]byte {
	t.Helper()
	s := New(bytes.NewReader(data), testPol)
	buf := make([]byte, MaxSize)
	var out [][]byte
	for {
		c, err := s.Next(buf)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), c...))
	}
}

func TestSplitReassembles(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	for _, size := range []int{0, 1, MinSize - 1, MinSize, 3 * MaxSize, 20 << 20} {
		data := make([]byte, size)
		rnd.Read(data)
		chunks := split(t, data)
		if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
			t.Fatalf("size %d: reassembled %d bytes differ", size, len(got))
		}
		for i, c := range chunks {
			if len(c) > MaxSize {
				t.Fatalf("size %d: chunk %d has %d bytes > max", size, i, len(c))
			}
			if i < len(chunks)-1 && len(c) < MinSize {
				t.Fatalf("size %d: inner chunk %d has %d bytes < min", size, i, len(c))
			}
		}
		if size == 0 && len(chunks) != 0 {
			t.Fatalf("empty input gave %d chunks", len(chunks))
		}
	}
}

// An insertion near the start must leave most later chunks unchanged: that is
// what makes an edited 2 GB dump upload only its changed regions.
func TestInsertionKeepsLaterChunks(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	data := make([]byte, 32<<20)
	rnd.Read(data)
	edited := append(append(append([]byte(nil), data[:1000]...), []byte("inserted bytes")...), data[1000:]...)

	seen := map[string]bool{}
	before := split(t, data)
	for _, c := range before {
		seen[string(c)] = true
	}
	after := split(t, edited)
	shared := 0
	for _, c := range after {
		if seen[string(c)] {
			shared++
		}
	}
	if shared < len(after)-2 {
		t.Fatalf("only %d of %d chunks shared after a small insertion", shared, len(after))
	}
}

func TestRandomPolynomialDiffers(t *testing.T) {
	a, err := RandomPolynomial()
	if err != nil {
		t.Fatal(err)
	}
	b, err := RandomPolynomial()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || !a.Irreducible() {
		t.Fatalf("polynomials %v %v", a, b)
	}
}

func BenchmarkSplit(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(3)).Read(data)
	buf := make([]byte, MaxSize)
	s := New(nil, testPol)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Reset(bytes.NewReader(data), testPol)
		for {
			if _, err := s.Next(buf); err != nil {
				break
			}
		}
	}
}

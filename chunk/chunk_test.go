package chunk

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"testing"

	"github.com/restic/chunker"
)

const testPol = Polynomial(0x3DA3358B4DC173)

func split(t *testing.T, data []byte) [][]byte {
	t.Helper()
	return splitAverage(t, data, DefaultAverage)
}

func splitAverage(t *testing.T, data []byte, average int) [][]byte {
	t.Helper()
	s, err := NewAverage(bytes.NewReader(data), testPol, average)
	if err != nil {
		t.Fatal(err)
	}
	return drain(t, s)
}

func drain(t *testing.T, s *Splitter) [][]byte {
	t.Helper()
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

// Every average cuts within its bounds, about 1.5 times the average apart,
// and at a smaller average an insertion disturbs less of the stream.
func TestAverages(t *testing.T) {
	data := make([]byte, 8<<20)
	rand.New(rand.NewSource(4)).Read(data)
	edited := append(append(append([]byte(nil), data[:5<<20]...), []byte("one row updated")...), data[5<<20:]...)
	// The default average is restic's, checked below; 8 MiB are too few of
	// its chunks for a mean.
	for _, avg := range []int{MinAverage, 16 << 10, 64 << 10, 128 << 10} {
		chunks := splitAverage(t, data, avg)
		if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
			t.Fatalf("average %d: reassembled %d bytes differ", avg, len(got))
		}
		for i, c := range chunks {
			if len(c) > 8*avg || (i < len(chunks)-1 && len(c) < avg/2) {
				t.Fatalf("average %d: chunk %d has %d bytes, outside [%d, %d]", avg, i, len(c), avg/2, 8*avg)
			}
		}
		mean := float64(len(data)) / float64(len(chunks))
		if mean < 1.2*float64(avg) || mean > 1.8*float64(avg) {
			t.Errorf("average %d: %d chunks, %.0f bytes on average, want about %d", avg, len(chunks), mean, avg*3/2)
		}
		seen := map[string]bool{}
		for _, c := range chunks {
			seen[string(c)] = true
		}
		var fresh int
		for _, c := range splitAverage(t, edited, avg) {
			if !seen[string(c)] {
				fresh += len(c)
			}
		}
		// The chunk holding the insertion, perhaps its neighbour.
		if fresh > 2*8*avg {
			t.Errorf("average %d: an insertion made %d bytes of new chunks", avg, fresh)
		}
	}
}

// Shapes that skip more of each chunk than restic's: chunks within their
// bounds, about Min + 2^Bits long, and an edit still costs one chunk or two.
func TestShapes(t *testing.T) {
	data := make([]byte, 16<<20)
	rand.New(rand.NewSource(7)).Read(data)
	edited := append(append(append([]byte(nil), data[:9<<20]...), []byte("one row updated")...), data[9<<20:]...)
	for _, shape := range []Shape{{Min: 16 << 10, Bits: 13, Max: 128 << 10}, {Min: 192 << 10, Bits: 16, Max: 1 << 20}} {
		s, err := NewShape(bytes.NewReader(data), testPol, shape)
		if err != nil {
			t.Fatal(err)
		}
		chunks := drain(t, s)
		if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
			t.Fatalf("%+v: reassembled %d bytes differ", shape, len(got))
		}
		for i, c := range chunks {
			if uint(len(c)) > shape.Max || (i < len(chunks)-1 && uint(len(c)) < shape.Min) {
				t.Fatalf("%+v: chunk %d has %d bytes", shape, i, len(c))
			}
		}
		mean := float64(len(data)) / float64(len(chunks))
		if mean < 0.8*float64(shape.Mean()) || mean > 1.2*float64(shape.Mean()) {
			t.Errorf("%+v: %d chunks, %.0f bytes on average, want about %d", shape, len(chunks), mean, shape.Mean())
		}
		seen := map[string]bool{}
		for _, c := range chunks {
			seen[string(c)] = true
		}
		s2, err := NewShape(bytes.NewReader(edited), testPol, shape)
		if err != nil {
			t.Fatal(err)
		}
		var fresh int
		for _, c := range drain(t, s2) {
			if !seen[string(c)] {
				fresh += len(c)
			}
		}
		if fresh > 2*int(shape.Max) {
			t.Errorf("%+v: an insertion made %d bytes of new chunks", shape, fresh)
		}
	}
}

func TestShapeRejected(t *testing.T) {
	for _, shape := range []Shape{
		{},
		{Min: 4 << 10, Bits: 11, Max: 64 << 10},   // 2^Bits below MinAverage
		{Min: 1 << 20, Bits: 21, Max: 8 << 20},    // above DefaultAverage
		{Min: 16 << 10, Bits: 16, Max: 1 << 20},   // Min below 2^Bits/2
		{Min: 64 << 10, Bits: 16, Max: 128 << 10}, // Max too close to Min
		{Min: 512 << 10, Bits: 20, Max: 16 << 20}, // Max above MaxSize
	} {
		if _, err := NewShape(nil, testPol, shape); err == nil {
			t.Errorf("shape %+v accepted", shape)
		}
	}
	if err := Average(DefaultAverage).Validate(); err != nil {
		t.Errorf("restic's shape: %v", err)
	}
}

func TestAverageRejected(t *testing.T) {
	for _, avg := range []int{0, -1, MinAverage / 2, 3 << 10, 96 << 10, 2 * DefaultAverage} {
		if _, err := NewAverage(nil, testPol, avg); err == nil {
			t.Errorf("average %d accepted", avg)
		}
	}
}

// The default splitter is restic's: files cut as restic cuts them.
func TestDefaultIsRestics(t *testing.T) {
	data := make([]byte, 12<<20)
	rand.New(rand.NewSource(5)).Read(data)
	var want [][]byte
	c := chunker.New(bytes.NewReader(data), testPol)
	buf := make([]byte, chunker.MaxSize)
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, append([]byte(nil), ch.Data...))
	}
	got := drain(t, New(bytes.NewReader(data), testPol))
	if len(got) != len(want) {
		t.Fatalf("%d chunks, restic's chunker makes %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("chunk %d differs from restic's", i)
		}
	}
}

// Reset keeps the splitter's average.
func TestResetKeepsAverage(t *testing.T) {
	data := make([]byte, 4<<20)
	rand.New(rand.NewSource(6)).Read(data)
	s, err := NewAverage(bytes.NewReader(data), testPol, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	first := len(drain(t, s))
	s.Reset(bytes.NewReader(data), testPol)
	if again := len(drain(t, s)); again != first || first < 100 {
		t.Fatalf("%d chunks before Reset, %d after", first, again)
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

// BenchmarkSplit cuts 64 MiB with restic's shape (files), restic's shape at
// 128 KiB (how dumps were cut) and the dump shape: the skipped minimum is
// what the CPU per byte depends on.
func BenchmarkSplit(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(3)).Read(data)
	buf := make([]byte, MaxSize)
	for _, bc := range []struct {
		name  string
		shape Shape
	}{
		{"restic", Average(DefaultAverage)},
		{"restic-128k", Average(128 << 10)},
		{"dump", Shape{Min: 192 << 10, Bits: 16, Max: 1 << 20}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := NewShape(nil, testPol, bc.shape)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				s.Reset(bytes.NewReader(data), testPol)
				for {
					if _, err := s.Next(buf); err != nil {
						break
					}
				}
			}
		})
	}
}

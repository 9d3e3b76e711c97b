package chunk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand"
	"testing"
	"testing/iotest"

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

func TestAverageRejected(t *testing.T) {
	for _, avg := range []int{0, -1, MinAverage / 2, 3 << 10, 96 << 10, 2 * DefaultAverage} {
		if _, err := NewAverage(nil, testPol, avg); err == nil {
			t.Errorf("average %d accepted", avg)
		}
	}
}

// The default splitter is restic's: files cut as restic cuts them.
// resticChunks splits data with restic's chunker at average.
func resticChunks(t *testing.T, data []byte, average int) [][]byte {
	t.Helper()
	c := chunker.NewWithBoundaries(bytes.NewReader(data), testPol, uint(average/2), uint(average*8))
	c.SetAverageBits(bits.TrailingZeros(uint(average)))
	buf := make([]byte, chunker.MaxSize)
	var want [][]byte
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			return want
		}
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, append([]byte(nil), ch.Data...))
	}
}

// The splitter cuts where restic's chunker does, at every average, on
// random data, on text-like data with few distinct bytes, and on data with
// long runs of one byte (which reach the maximum size): chunks already in a
// repository must deduplicate, and restic must cut files the same way.
func TestSameCutsAsRestic(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	random := make([]byte, 6<<20)
	rng.Read(random)
	text := make([]byte, 3<<20)
	for i := range text {
		text[i] = "etaoin shrdlu\n,.0123"[rng.Intn(20)]
	}
	runs := make([]byte, 0, 12<<20)
	for len(runs) < 8<<20 {
		n := rng.Intn(3 << 20)
		runs = append(runs, bytes.Repeat([]byte{byte(rng.Intn(2))}, n)...)
		runs = append(runs, random[:rng.Intn(200<<10)]...)
	}
	for _, in := range []struct {
		name string
		data []byte
	}{{"random", random}, {"text", text}, {"runs", runs}, {"short", random[:1000]}, {"empty", nil}} {
		for _, avg := range []int{MinAverage, 16 << 10, 128 << 10, DefaultAverage} {
			want := resticChunks(t, in.data, avg)
			got := splitAverage(t, in.data, avg)
			if len(got) != len(want) {
				t.Fatalf("%s, average %d: %d chunks, restic's chunker makes %d", in.name, avg, len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("%s, average %d: chunk %d (%d bytes) differs from restic's (%d bytes)", in.name, avg, i, len(got[i]), len(want[i]))
				}
			}
		}
	}
}

// A read error ends the split with that error, as restic's chunker does,
// not with a short last chunk.
func TestReadErrorFails(t *testing.T) {
	boom := errors.New("boom")
	data := make([]byte, 3<<20)
	rand.New(rand.NewSource(7)).Read(data)
	s, err := NewAverage(io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), testPol, 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, MaxSize)
	for {
		_, err := s.Next(buf)
		if errors.Is(err, boom) {
			return
		}
		if err != nil {
			t.Fatalf("got %v, want the read error", err)
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

func BenchmarkSplit(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(3)).Read(data)
	for _, avg := range []int{128 << 10, DefaultAverage} {
		b.Run(fmt.Sprintf("avg=%dKiB", avg>>10), func(b *testing.B) {
			buf := make([]byte, MaxSize)
			s, _ := NewAverage(nil, testPol, avg)
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

// BenchmarkSplitRestic is restic's chunker on the same data, for comparison.
func BenchmarkSplitRestic(b *testing.B) {
	data := make([]byte, 64<<20)
	rand.New(rand.NewSource(3)).Read(data)
	for _, avg := range []int{128 << 10, DefaultAverage} {
		b.Run(fmt.Sprintf("avg=%dKiB", avg>>10), func(b *testing.B) {
			buf := make([]byte, MaxSize)
			c := chunker.NewWithBoundaries(nil, testPol, uint(avg/2), uint(avg*8))
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				c.ResetWithBoundaries(bytes.NewReader(data), testPol, uint(avg/2), uint(avg*8))
				c.SetAverageBits(bits.TrailingZeros(uint(avg)))
				for {
					if _, err := c.Next(buf); err != nil {
						break
					}
				}
			}
		})
	}
}

package repo

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func testStreamLevels(t *testing.T) *streamLevels {
	t.Helper()
	c, err := newCodec(zstd.SpeedDefault)
	if err != nil {
		t.Fatal(err)
	}
	r := &Repository{codec: c}
	t.Cleanup(r.Close)
	l, err := r.newStreamLevels()
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// rows returns n blobs of about 128 KiB of pgbench-like account rows
// (sequential ids, a few non-zero balances, blank filler), which compress
// far better than 8 to 1.
func rows(seed int64, n int) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	var out [][]byte
	id := 1000000 // ids of one width, so that every blob is alike
	for range n {
		var b bytes.Buffer
		for b.Len() < 128<<10 {
			bal := 0
			if rng.Intn(20) == 0 {
				bal = rng.Intn(10000) - 5000
			}
			fmt.Fprintf(&b, "%d\t%d\t%d\t%84s\n", id, id/100000+1, bal, "")
			id++
		}
		out = append(out, b.Bytes())
	}
	return out
}

func randomBlobs(seed int64, n int) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	var out [][]byte
	for range n {
		b := make([]byte, 128<<10)
		rng.Read(b)
		out = append(out, b)
	}
	return out
}

// compress stores blob as a new blob of the stream, and checks that it
// decodes back.
func compressChecked(t *testing.T, l *streamLevels, blob []byte) []byte {
	t.Helper()
	z := l.compress(blob, make([]byte, 0, l.enc[0].MaxEncodedSize(len(blob))))
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	got, err := dec.DecodeAll(z, nil)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("a blob does not decode back: %v", err)
	}
	return z
}

// A stream whose blobs are mostly new (a first dump) is compressed at the
// fastest level, after the first blob, where it compresses less than 8 to 1.
func TestStreamLevelsBulkIsFast(t *testing.T) {
	l := testStreamLevels(t)
	for i, b := range prose(1, 8) {
		z := compressChecked(t, l, b)
		if i > 0 && !bytes.Equal(z, l.enc[0].EncodeAll(b, nil)) {
			t.Fatalf("blob %d of a first dump is not at the fastest level", i)
		}
	}
}

// The new blobs of a stream that mostly deduplicates (a later dump's
// changes), and those of a first dump that compress 8 to 1 or better, are
// compressed at the cheapest level that stores them within 1% of the
// smallest, found by probes. The test finds that level from every blob at
// every level; the contents lead to different ones.
func TestStreamLevelsProbedAtCheapestThatPays(t *testing.T) {
	chosen := map[int]bool{}
	for _, tc := range []struct {
		name  string
		blobs [][]byte
		bulk  bool
	}{
		{"prose", prose(2, 40), false},
		{"rows", rows(4, 40), false},
		{"random", randomBlobs(3, 40), false},
		{"rows in a first dump", rows(5, 40), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testStreamLevels(t)
			var sizes [3]int
			for _, b := range tc.blobs {
				for i, e := range l.enc {
					sizes[i] += len(e.EncodeAll(b, nil))
				}
			}
			want := 0
			for want < 2 && sizes[want]*100 > min(sizes[0], sizes[1], sizes[2])*101 {
				want++
			}
			chosen[want] = true
			if !tc.bulk {
				l.known.Store(1000) // earlier blobs of the stream were all stored
			}
			for i, b := range tc.blobs {
				if !tc.bulk {
					l.known.Add(3) // three known chunks for each changed one
				}
				z := compressChecked(t, l, b)
				if i%probeEvery == 0 {
					continue // a probe keeps the smallest
				}
				if w := l.enc[want].EncodeAll(b, nil); !bytes.Equal(z, w) {
					t.Fatalf("blob %d: %d bytes, want %d at level %d of 0-2 (all blobs at each: %v)", i, len(z), len(w), want, sizes)
				}
			}
		})
	}
	if len(chosen) < 2 {
		t.Errorf("the contents all lead to the same level %v: the test shows nothing", chosen)
	}
}

// prose returns n blobs of about 128 KiB of made-up sentences over a
// vocabulary of a few hundred words.
func prose(seed int64, n int) [][]byte {
	rng := rand.New(rand.NewSource(seed))
	words := make([]string, 400)
	for i := range words {
		w := make([]byte, 2+rng.Intn(8))
		for j := range w {
			w[j] = byte('a' + rng.Intn(26))
		}
		words[i] = string(w)
	}
	var out [][]byte
	for range n {
		var b bytes.Buffer
		for b.Len() < 128<<10 {
			// Zipf-like: a few words are most of the text.
			b.WriteString(words[int(float64(len(words))*rng.Float64()*rng.Float64()*rng.Float64())])
			if rng.Intn(12) == 0 {
				b.WriteString(". ")
			} else {
				b.WriteByte(' ')
			}
		}
		out = append(out, b.Bytes())
	}
	return out
}

package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

func newStreamRepo(t testing.TB) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, "stream test", repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// dumpLike returns n bytes of SQL-like text, the same for the same seed.
func dumpLike(n int, seed uint64) []byte {
	var b bytes.Buffer
	rnd := rand.New(rand.NewPCG(seed, seed))
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "INSERT INTO t VALUES (%d,%d,'%s');\n", i, rnd.IntN(1e6), strings.Repeat("x", rnd.IntN(80)))
	}
	return b.Bytes()[:n]
}

// A stream comes back byte for byte, in as many blobs as its average makes,
// whichever sealer stored which chunk.
func TestStreamRoundTrip(t *testing.T) {
	for _, shape := range []chunk.Shape{{}, chunk.Average(chunk.MinAverage), chunk.Average(64 << 10), {Min: 64 << 10, Bits: 15, Max: 512 << 10}} {
		t.Run(fmt.Sprint(shape), func(t *testing.T) {
			ctx := context.Background()
			r := newStreamRepo(t)
			data := dumpLike(3<<20+17, 1)
			res, err := backup.Stream(ctx, r, bytes.NewReader(data), "databases/t.sql", backup.Options{Chunks: shape})
			if err != nil {
				t.Fatal(err)
			}
			node, err := r.FindNode(ctx, res.Snapshot, "/databases/t.sql")
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, id := range node.Content {
				blob, err := r.LoadBlob(ctx, repo.BlobHandle{ID: id, Type: repo.DataBlob}, nil)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, blob...)
			}
			if !bytes.Equal(got, data) || node.Size != uint64(len(data)) {
				t.Fatalf("read back %d bytes (size %d) that differ from the %d streamed", len(got), node.Size, len(data))
			}
			want := 1 // the default's minimum is more than half the stream
			if shape != (chunk.Shape{}) {
				want = len(data) / (2 * shape.Mean())
			}
			if n := len(node.Content); n < want {
				t.Errorf("%d blobs, want at least %d", n, want)
			}
		})
	}
}

// failingReader returns data, then err instead of the end; before failing
// it calls hook, if any.
type failingReader struct {
	rd   io.Reader
	err  error
	hook func()
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.rd.Read(p)
	if errors.Is(err, io.EOF) {
		if f.hook != nil {
			f.hook()
		}
		return n, f.err
	}
	return n, err
}

// A stream that fails, or is cancelled, before its end saves no snapshot.
func TestStreamFailureSavesNothing(t *testing.T) {
	broken := errors.New("dump tool exited with status 2")
	for _, tc := range []struct {
		name   string
		shape  chunk.Shape
		cancel bool
		want   error
		msg    string
	}{
		{name: "read error", shape: chunk.Average(64 << 10), want: broken, msg: "read input"},
		{name: "read error default average", want: broken, msg: "read input"},
		{name: "cancelled", shape: chunk.Average(64 << 10), cancel: true, want: context.Canceled},
		{name: "bad shape", shape: chunk.Shape{Min: 64 << 10, Bits: 16, Max: 128 << 10}, msg: "chunk shape"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := newStreamRepo(t)
			rd := &failingReader{rd: bytes.NewReader(dumpLike(2<<20, 2)), err: broken}
			if tc.cancel {
				rd.err, rd.hook = io.EOF, cancel // cancelled just before a clean end
			}
			_, err := backup.Stream(ctx, r, rd, "databases/t.sql", backup.Options{Chunks: tc.shape})
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			snaps, err := r.Snapshots(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(snaps) != 0 {
				t.Fatalf("%d snapshots saved", len(snaps))
			}
		})
	}
}

// BenchmarkStream is what a dump costs escrow per byte, without the dump
// tool: 64 MiB of dump-like text streamed into a local repository as
// `escrow db dump` streams it, the first time ("new": every chunk cut,
// hashed, compressed, encrypted and written) and again ("known": every
// chunk cut and hashed only, as most of a nightly dump), with restic's
// shape at 128 KiB (how dumps were cut before) and database.DumpChunks.
func BenchmarkStream(b *testing.B) {
	ctx := context.Background()
	data := dumpLike(64<<20, 9)
	for _, bc := range []struct {
		name  string
		shape chunk.Shape
	}{
		{"restic-128k", chunk.Average(128 << 10)},
		{"dump", database.DumpChunks()},
	} {
		opts := backup.Options{Chunks: bc.shape, Compression: repo.CompressionStream}
		b.Run(bc.name+"/new", func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				b.StopTimer()
				r := newStreamRepo(b)
				b.StartTimer()
				if _, err := backup.Stream(ctx, r, bytes.NewReader(data), "databases/t.sql", opts); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(bc.name+"/known", func(b *testing.B) {
			r := newStreamRepo(b)
			if _, err := backup.Stream(ctx, r, bytes.NewReader(data), "databases/t.sql", opts); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := backup.Stream(ctx, r, bytes.NewReader(data), "databases/t.sql", opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

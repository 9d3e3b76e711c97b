package repo_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand"
	"runtime"
	"sync"
	"testing"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// TestWriterConcurrentSaves saves blobs of every size, from several
// goroutines at once and with duplicates between them, into small packs:
// blobs are encrypted into their pack outside the writer's lock, so a pack
// sealed too early, or a region handed out twice, would show here as a blob
// that fails its MAC or its hash.
func TestWriterConcurrentSaves(t *testing.T) {
	ctx := context.Background()
	opts := fastKDF
	opts.PackSize = 64 << 10
	r, dir := newRepo(t, opts)
	w := r.NewWriter(ctx)

	const workers, perWorker = 6, 40
	sizes := []int{0, 1, 100, 4 << 10, 40 << 10, 63 << 10, 64 << 10, 70 << 10, 200 << 10}
	blobs := make([][][]byte, workers)
	for i := range blobs {
		rnd := rand.New(rand.NewSource(int64(i)))
		for j := range perWorker {
			b := make([]byte, sizes[rnd.Intn(len(sizes))])
			if j%2 == 0 {
				rnd.Read(b) // incompressible
			}
			if j%5 == 0 && len(b) >= 8 {
				binary.LittleEndian.PutUint64(b, uint64(j)) // the same blob in every worker
			} else if len(b) >= 16 {
				binary.LittleEndian.PutUint64(b[8:], uint64(i*1000+j))
			}
			blobs[i] = append(blobs[i], b)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		wg.Go(func() {
			for _, b := range blobs[i] {
				typ := repo.DataBlob
				if len(b)%3 == 1 {
					typ = repo.TreeBlob
				}
				if _, _, err := w.SaveBlob(ctx, typ, b); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}

	r2, err := openRepo(t, dir, "secret")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	checkPacksMatchIndex(t, r2)
	for i := range blobs {
		for _, b := range blobs[i] {
			typ := repo.DataBlob
			if len(b)%3 == 1 {
				typ = repo.TreeBlob
			}
			h := repo.BlobHandle{ID: repo.Hash(b), Type: typ}
			if typ == repo.TreeBlob {
				if _, ok := r2.Index().Lookup(h); !ok {
					t.Fatalf("%s not indexed", h)
				}
				continue
			}
			got, err := r2.LoadBlob(ctx, h, nil)
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("%s: err=%v equal=%v", h, err, bytes.Equal(got, b))
			}
		}
	}
	// Packs are cut near PackSize; only a pack holding a single blob
	// bigger than that may be larger.
	for id, size := range r2.Index().Packs() {
		if size > int64(opts.PackSize+opts.PackSize/8) {
			data, err := remote.LoadAll(ctx, r2.Backend(), remote.Handle{Type: remote.PackFile, Name: id.String()})
			if err != nil {
				t.Fatal(err)
			}
			if pbs, err := r2.Key().DecodePack(data, id); err != nil || len(pbs) != 1 {
				t.Errorf("pack %s: %d bytes with %d blobs (%v)", id.Str(), size, len(pbs), err)
			}
		}
	}
}

// TestWriterAllocatesLittlePerBlob keeps a backup's memory flat: once its
// pack and compression buffers exist, the writer reuses them, so saving
// more data allocates almost nothing more.
func TestWriterAllocatesLittlePerBlob(t *testing.T) {
	if testing.Short() {
		t.Skip("compresses 40 MiB")
	}
	ctx := context.Background()
	opts := fastKDF
	opts.PackSize = 1 << 20
	opts.Uploads = 1 // two data pack buffers at most: one filling, one uploading
	r, _ := newRepo(t, opts)
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data[:len(data)/2]) // half compressible
	w := r.NewWriter(ctx)
	save := func(from, to int) {
		for i := from; i < to; i++ {
			binary.LittleEndian.PutUint64(data, uint64(i)) // a new blob each time
			if _, isNew, err := w.SaveBlob(ctx, repo.DataBlob, data); err != nil || !isNew {
				t.Fatalf("blob %d: new=%v err=%v", i, isNew, err)
			}
		}
	}
	const warm, measured = 8, 32 // MiB
	save(0, warm)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	save(warm, warm+measured)
	runtime.ReadMemStats(&after)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	perMiB := (after.TotalAlloc - before.TotalAlloc) / measured
	t.Logf("%d bytes allocated per MiB saved", perMiB)
	// Before buffers were reused this was over 2 MiB per MiB: a compressed
	// copy, an encrypted copy and the pack that grew around them.
	if perMiB > 128<<10 {
		t.Errorf("the writer allocates %d bytes per MiB saved, want at most 128 KiB", perMiB)
	}
}

// BenchmarkWriter reports the writer's throughput and what it allocates
// per MiB saved (alloc-B/MiB), the figure that keeps a backup's memory flat.
func BenchmarkWriter(b *testing.B) {
	ctx := context.Background()
	opts := fastKDF
	r, _ := newRepo(b, opts)
	data := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(data[:len(data)/2])
	b.SetBytes(int64(len(data)))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	w := r.NewWriter(ctx)
	for i := 0; b.Loop(); i++ {
		binary.LittleEndian.PutUint64(data, uint64(i))
		if _, _, err := w.SaveBlob(ctx, repo.DataBlob, data); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N), "alloc-B/MiB")
}

// A writer at CompressionBetter stores compressible blobs in no more bytes
// than the default level, and they read back the same.
func TestWriterCompressionBetter(t *testing.T) {
	ctx := context.Background()
	r, _ := newRepo(t, fastKDF)
	var rows bytes.Buffer
	for i := 0; rows.Len() < 128<<10; i++ {
		fmt.Fprintf(&rows, "INSERT INTO pgbench_accounts VALUES (%d,%d,%d,'                                        ');\n", i, i%20+1, (i*7919)%100000-50000)
	}
	sizes := map[repo.Compression]uint32{}
	for _, c := range []repo.Compression{repo.CompressionAuto, repo.CompressionBetter} {
		w, err := r.NewWriterCompression(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		data := append(bytes.Clone(rows.Bytes()), byte(c)) // a blob of its own per level
		id, _, err := w.SaveBlob(ctx, repo.DataBlob, data)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
		h := repo.BlobHandle{ID: id, Type: repo.DataBlob}
		pb, ok := r.Index().Lookup(h)
		if !ok {
			t.Fatalf("level %d: blob not indexed", c)
		}
		sizes[c] = pb.Length
		got, err := r.LoadBlob(ctx, h, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("level %d: read back %d bytes, %v", c, len(got), err)
		}
	}
	if sizes[repo.CompressionBetter] > sizes[repo.CompressionAuto] {
		t.Errorf("better level stored %d bytes, default %d", sizes[repo.CompressionBetter], sizes[repo.CompressionAuto])
	}
}

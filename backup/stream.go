package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/repo"
)

// Stream backs up everything read from rd as one file at filename (a
// slash-separated path such as "databases/shop.sql", stored below the
// snapshot's root). If rd fails, including a dump command that exits
// non-zero after writing, no snapshot is saved.
func Stream(ctx context.Context, r *repo.Repository, rd io.Reader, filename string, opts Options) (*Result, error) {
	opts.fill()
	clean := path.Clean("/" + strings.TrimSpace(filename))
	if clean == "/" || strings.Contains(filename, "\x00") {
		return nil, fmt.Errorf("invalid stream file name %q: give a name such as databases/shop.sql", filename)
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	start := opts.Now()
	res := &Result{Summary: repo.Summary{BackupStart: start}}
	shape := opts.Chunks
	if shape == (chunk.Shape{}) {
		shape = chunk.Average(chunk.DefaultAverage)
	}
	sp, err := chunk.NewShape(rd, r.Config().ChunkerPolynomial, shape)
	if err != nil {
		return nil, err
	}
	w, err := r.NewWriterCompression(ctx, opts.Compression)
	if err != nil {
		return nil, err
	}

	content, size, err := saveStream(ctx, w, sp, shape)
	if err != nil {
		_ = w.Close(ctx)
		return nil, err
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	node := &repo.Node{
		Name: parts[len(parts)-1], Type: repo.NodeFile, Mode: 0o600,
		ModTime: start, AccessTime: start, ChangeTime: start,
		UID: uid, GID: gid, Size: size, Links: 1, Content: content,
	}
	// Wrap the file in its directories, innermost first, up to the root.
	var rootID repo.ID
	for i := len(parts) - 2; ; i-- {
		id, err := w.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{node}})
		if err != nil {
			_ = w.Close(ctx)
			return nil, err
		}
		if i < 0 {
			rootID = id
			break
		}
		node = &repo.Node{
			Name: parts[i], Type: repo.NodeDir, Mode: fs.ModeDir | 0o700,
			ModTime: start, AccessTime: start, ChangeTime: start,
			UID: uid, GID: gid, Subtree: &id,
		}
	}
	sn := newSnapshot(&opts, []string{clean}, start)
	sn.Tree = &rootID
	res.Summary.FilesNew = 1
	res.Summary.TotalFilesProcessed = 1
	res.Summary.TotalBytesProcessed = size
	res.BytesRead = size
	if err := commit(ctx, r, w, sn, res, opts.Now); err != nil {
		return nil, err
	}
	return res, nil
}

// saveStream cuts the stream into chunks in this goroutine, which alone
// reads rd, and stores them from sealers: while one chunk is hashed,
// compressed and encrypted, the next is read and cut, so a dump tool's
// output flows on rather than waiting for each blob. Chunk buffers go round
// a fixed set, so memory stays flat however long the stream.
func saveStream(ctx context.Context, w *repo.Writer, sp *chunk.Splitter, shape chunk.Shape) ([]repo.ID, uint64, error) {
	// One buffer per sealer and one being cut. A buffer starts at Min plus
	// 4 times the mean run past it, which holds 98% of chunks, and keeps
	// what it grows to. The sealers' buffers stay within about 10 MiB: 2
	// sealers at restic's shape, up to 4 at smaller ones.
	size0 := int(shape.Min) + 4<<shape.Bits
	sealers := max(1, min(runtime.GOMAXPROCS(0), 4, (10<<20)/size0))
	free := make(chan []byte, sealers+1)
	for range sealers + 1 {
		free <- make([]byte, 0, size0)
	}
	type piece struct {
		seq  int
		data []byte
	}
	work := make(chan piece)
	var mu sync.Mutex
	content := []repo.ID{}
	g, gctx := errgroup.WithContext(ctx)
	for range sealers {
		g.Go(func() error {
			for p := range work {
				id, _, err := w.SaveBlob(gctx, repo.DataBlob, p.data)
				if err != nil {
					return err
				}
				mu.Lock()
				for len(content) <= p.seq {
					content = append(content, repo.ID{})
				}
				content[p.seq] = id
				mu.Unlock()
				free <- p.data[:0]
			}
			return nil
		})
	}

	var size uint64
	var readErr error
	for seq := 0; ; seq++ {
		var buf []byte
		select {
		case buf = <-free:
		case <-gctx.Done():
		}
		if gctx.Err() != nil {
			break // a sealer failed (its error is returned), or ctx ended
		}
		data, err := sp.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = fmt.Errorf("read input: %w", err)
			break
		}
		size += uint64(len(data))
		select {
		case work <- piece{seq: seq, data: data}:
		case <-gctx.Done():
		}
	}
	close(work)
	err := g.Wait()
	if readErr != nil {
		return nil, 0, readErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, 0, err
	}
	return content, size, nil
}

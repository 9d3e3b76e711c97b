package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

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
	avg := opts.ChunkAverage
	if avg == 0 {
		avg = chunk.DefaultAverage
	}
	sp, err := chunk.NewAverage(rd, r.Config().ChunkerPolynomial, avg)
	if err != nil {
		return nil, err
	}
	w := r.NewWriter(ctx)

	content, size, err := saveStream(ctx, w, sp)
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

func saveStream(ctx context.Context, w *repo.Writer, sp *chunk.Splitter) ([]repo.ID, uint64, error) {
	buf := make([]byte, chunk.MaxSize)
	content := []repo.ID{}
	var size uint64
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		data, err := sp.Next(buf)
		if errors.Is(err, io.EOF) {
			return content, size, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read input: %w", err)
		}
		id, _, err := w.SaveBlob(ctx, repo.DataBlob, data)
		if err != nil {
			return nil, 0, err
		}
		content = append(content, id)
		size += uint64(len(data))
	}
}

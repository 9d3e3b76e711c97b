package restore

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/escrow-backup/escrow/repo"
)

// dumpAhead is how many blobs are fetched ahead of the writer: enough to
// keep the store busy, few enough that memory stays at a few chunks.
const dumpAhead = 4

// Dump writes the content of file node n to w, in order, fetching a few
// blobs ahead. A blob that cannot be loaded or fails verification stops the
// dump with an error naming it, never with silently short output.
func Dump(ctx context.Context, r *repo.Repository, n *repo.Node, w io.Writer) error {
	if n.Type != repo.NodeFile {
		return fmt.Errorf("%s is a %s, not a file", n.Name, n.Type)
	}
	type result struct {
		data []byte
		err  error
	}
	// Every fetch is waited for before returning, so none outlives the
	// caller's use of the repository.
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := make([]chan result, len(n.Content))
	for i := range slots {
		slots[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, dumpAhead)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i, id := range n.Content {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				data, err := r.LoadBlob(ctx, repo.BlobHandle{ID: id, Type: repo.DataBlob}, nil)
				slots[i] <- result{data, err}
			}()
		}
	}()
	for i := range n.Content {
		var res result
		select {
		case res = <-slots[i]:
		case <-ctx.Done():
			return ctx.Err()
		}
		<-sem
		if res.err != nil {
			return fmt.Errorf("%s: %w", n.Name, res.err)
		}
		if _, err := w.Write(res.data); err != nil {
			return fmt.Errorf("write %s: %w", n.Name, err)
		}
	}
	return nil
}

package repo

import "context"

// NewRepackWriter is a Writer for prune: it stores every blob it is given
// once (deduplicating only among its own blobs), so that used blobs can be
// copied out of packs that are about to be deleted although the master
// index still lists them there.
func (r *Repository) NewRepackWriter(ctx context.Context) *Writer {
	w := r.NewWriter(ctx)
	w.repack = true
	return w
}

// IndexFiles returns the index files the writer has stored so far.
func (w *Writer) IndexFiles() []ID {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ID(nil), w.indexFiles...)
}

package restore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// blobUse is one place a blob's plaintext goes.
type blobUse struct {
	file   *fileEntry
	offset int64
}

// packPlan lists the blobs wanted from one pack and where each goes.
type packPlan struct {
	id    repo.ID
	blobs map[repo.ID]*wanted
	// start and end bound the blobs wanted: the range read from the pack.
	start, end int64
}

type wanted struct {
	pb   repo.PackedBlob
	uses []blobUse
}

// plan groups a batch's blobs by pack, in the order the batch first needs
// the packs, and returns the buffer sizes its packs need at most. Empty
// files need no pack: they are made here.
func (rs *restorer) plan(b *batch) ([]*packPlan, bufSizes) {
	packs := map[repo.ID]*packPlan{}
	var order []*packPlan
	for _, f := range b.files {
		if len(f.blobs) == 0 {
			if err := rs.createPartial(f); err != nil {
				rs.fail(f.path, err)
				f.failed.Store(true)
				continue
			}
			rs.finish(f)
			continue
		}
		// A file with content is created by the worker that writes its
		// first blob (f.create): creating a million files one after the
		// other here, before any pack is read, took a third of a restore
		// of small files.
		f.remaining.Store(int32(len(f.blobs)))
		var off int64
		for _, pb := range f.blobs {
			p := packs[pb.PackID]
			if p == nil {
				p = &packPlan{id: pb.PackID, blobs: map[repo.ID]*wanted{}, start: int64(pb.Offset)}
				packs[pb.PackID] = p
				order = append(order, p)
			}
			p.start = min(p.start, int64(pb.Offset))
			p.end = max(p.end, int64(pb.Offset)+int64(pb.Length))
			w := p.blobs[pb.ID]
			if w == nil {
				w = &wanted{pb: pb}
				p.blobs[pb.ID] = w
			}
			w.uses = append(w.uses, blobUse{file: f, offset: off})
			off += int64(pb.PlainLength())
		}
	}
	var sizes bufSizes
	for _, p := range order {
		// A part of the range is at most rs.limits.part bytes, or one blob.
		data := min(p.end-p.start, rs.limits.part)
		for _, w := range p.blobs {
			data = max(data, int64(w.pb.Length))
			if w.pb.UncompressedLength != 0 {
				sizes.plain = max(sizes.plain, int64(w.pb.UncompressedLength))
			}
		}
		sizes.data = max(sizes.data, data)
	}
	return order, sizes
}

func partialName(p string) string { return p + partialSuffix }

// createPartial makes the temporary file at its full size; regions of zeros
// are then left unwritten, so sparse files stay sparse.
func (rs *restorer) createPartial(f *fileEntry) error {
	tmp := partialName(f.path)
	fh, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := fh.Truncate(int64(f.node.Size)); err != nil {
		fh.Close()
		return fmt.Errorf("%w (is the disk full?)", err)
	}
	return fh.Close()
}

// created creates f's partial file once, whichever worker gets to it
// first; the others wait for it.
func (rs *restorer) created(f *fileEntry) error {
	f.create.Do(func() { f.createErr = rs.createPartial(f) })
	return f.createErr
}

// packBufs are one worker's buffers: the range read from a pack, in which
// blobs are decrypted, and a compressed blob's plaintext. They are allocated
// when first needed, at the sizes a batch needs at most.
type packBufs struct {
	sizes       bufSizes
	data, plain []byte
}

type bufSizes struct {
	data, plain int64
}

// grow makes the buffers at least as large as s asks; larger ones are kept.
func (b *packBufs) grow(s bufSizes) {
	if s.data > b.sizes.data {
		b.sizes.data, b.data = s.data, nil
	}
	if s.plain > b.sizes.plain {
		b.sizes.plain, b.plain = s.plain, nil
	}
}

func (b *packBufs) dataBuf() []byte {
	if b.data == nil {
		b.data = make([]byte, 0, b.sizes.data)
	}
	return b.data
}

func (b *packBufs) plainBuf() []byte {
	if b.plain == nil && b.sizes.plain > 0 {
		b.plain = make([]byte, 0, b.sizes.plain)
	}
	return b.plain
}

// restorePart bounds what a worker reads from a pack at once: the range of
// its wanted blobs is read in parts of at most this many bytes (or one blob,
// if larger), so a worker's buffer is sized by the part and the largest
// blob, not by the pack (a repository may have packs of 64 MiB or more). A
// few MiB keep the extra requests few: an 8 MiB pack takes two or three.
const restorePart = 4 << 20

// restorePack reads the wanted blobs of one pack, the range they span in
// parts of at most rs.limits.part bytes, and writes each blob to every place that
// needs it.
func (rs *restorer) restorePack(ctx context.Context, p *packPlan, bufs *packBufs) {
	list := make([]*wanted, 0, len(p.blobs))
	for _, w := range p.blobs {
		list = append(list, w)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].pb.Offset < list[j].pb.Offset })
	rs.reads.Add(1)
	overwritten := false
	for i := 0; i < len(list); {
		start := int64(list[i].pb.Offset)
		j := i + 1
		for j < len(list) && blobEnd(list[j])-start <= rs.limits.part {
			j++
		}
		var err error
		if overwritten, err = rs.restorePart(ctx, p, list[i:j], start, blobEnd(list[j-1]), overwritten, bufs); err != nil {
			// A missing pack, or a store that stayed unreachable
			// through the retries: the rest of the pack is not tried.
			rs.failBlobs(list[i:], err)
			return
		}
		i = j
	}
}

func blobEnd(w *wanted) int64 { return int64(w.pb.Offset) + int64(w.pb.Length) }

// failBlobs fails every file that needs one of list's blobs.
func (rs *restorer) failBlobs(list []*wanted, err error) {
	for _, w := range list {
		for _, u := range w.uses {
			if !u.file.failed.Swap(true) {
				rs.fail(u.file.path, err)
				_ = os.Remove(partialName(u.file.path))
			}
		}
	}
}

// restorePart reads the bytes start to end of a pack, which hold the blobs
// of list, and writes those blobs. overwritten says an earlier part found
// the pack not what the index describes: its blobs are then read one by
// one. It returns whether the pack was found overwritten, and the error
// that makes the rest of the pack not worth trying.
func (rs *restorer) restorePart(ctx context.Context, p *packPlan, list []*wanted, start, end int64, overwritten bool, bufs *packBufs) (bool, error) {
	var data []byte
	if !overwritten {
		rs.parts.Add(1)
		rs.readBytes.Add(end - start)
		var err error
		data, err = remote.LoadRangeInto(ctx, rs.r.Backend(), remote.Handle{Type: remote.PackFile, Name: p.id.String()}, start, end-start, bufs.dataBuf())
		if err == nil && int64(len(data)) != end-start {
			err = fmt.Errorf("got %d bytes, want %d: %w", len(data), end-start, remote.ErrPermanent)
		}
		// A pack that is not what the index describes (someone wrote over it,
		// so the range no longer fits) is read blob by blob, each from an older
		// version of the pack if the store keeps them. A missing pack, or a
		// store that stayed unreachable through the retries, fails at once.
		overwritten = err != nil && remote.IsPermanent(err) && !remote.IsNotFound(err) && ctx.Err() == nil
		if err != nil && !overwritten {
			return false, fmt.Errorf("read pack %s: %w", p.id.Str(), err)
		}
	}
	for _, w := range list {
		var plain []byte
		var err error
		if !overwritten {
			off := int64(w.pb.Offset) - start
			// Each blob is read once: it can be decrypted where it lies.
			plain, err = rs.r.OpenBlobInPlace(w.pb, data[off:off+int64(w.pb.Length)], bufs.plainBuf())
		}
		if overwritten || errors.Is(err, repo.ErrCorrupt) {
			plain, err = rs.r.LoadPackedBlob(ctx, w.pb, bufs.plainBuf())
		}
		for _, u := range w.uses {
			if u.file.failed.Load() {
				continue
			}
			// A failed write fails that file only, not the blob's other uses.
			werr := err
			switch {
			case werr != nil:
			case len(u.file.blobs) == 1:
				werr = writeWhole(u.file, plain)
			default:
				werr = rs.created(u.file)
				if werr == nil {
					werr = writeAt(partialName(u.file.path), plain, u.offset)
				}
			}
			if werr != nil {
				u.file.failed.Store(true)
				rs.fail(u.file.path, werr)
				_ = os.Remove(partialName(u.file.path))
				continue
			}
			rs.progress(0, uint64(len(plain)))
			if u.file.remaining.Add(-1) == 0 {
				rs.finish(u.file)
			}
		}
	}
	return overwritten, nil
}

// writeWhole writes the partial file of a file of one blob in one open:
// most files of a site are that small, and a restore of them is mostly
// system calls (create, truncate, open, write, close, then metadata and a
// rename: three fewer here).
func writeWhole(f *fileEntry, data []byte) error {
	fh, err := os.OpenFile(partialName(f.path), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	// All zeros are left a hole, so sparse files stay sparse.
	zero := isZero(data)
	if !zero {
		_, err = fh.Write(data)
	}
	if err == nil && (zero || uint64(len(data)) != f.node.Size) {
		err = fh.Truncate(int64(f.node.Size))
	}
	if err != nil {
		fh.Close()
		return fmt.Errorf("%w (is the disk full?)", err)
	}
	return fh.Close()
}

func writeAt(name string, data []byte, off int64) error {
	if isZero(data) {
		return nil // the file was created at full size: this is already a hole
	}
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, off); err != nil {
		f.Close()
		return fmt.Errorf("%w (is the disk full?)", err)
	}
	return f.Close()
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// finish sets a complete file's metadata and renames it into place. Files
// are not synced one by one (thousands of small fsyncs dominate a restore);
// the whole file system is synced once at the end, and a restore cut short
// before that is simply run again: it re-checks every file by content.
func (rs *restorer) finish(f *fileEntry) {
	tmp := partialName(f.path)
	err := rs.applyMeta(tmp, f.node)
	if err == nil {
		err = os.Rename(tmp, f.path)
	}
	if err != nil {
		f.failed.Store(true)
		rs.fail(f.path, err)
		_ = os.Remove(tmp)
		return
	}
	rs.mu.Lock()
	rs.res.Files++
	rs.res.Bytes += f.node.Size
	rs.mu.Unlock()
	rs.progress(1, 0)
}

func matchesOK(f *fileEntry, buf *[]byte) bool {
	ok, _ := matches(f.path, f.node.Size, f.blobs, buf)
	return ok
}

// matches reports whether the file at p has exactly the snapshot's content,
// by hashing it blob by blob.
func matches(p string, size uint64, blobs []repo.PackedBlob, buf *[]byte) (bool, error) {
	f, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || uint64(fi.Size()) != size {
		return false, err
	}
	for _, pb := range blobs {
		n := int(pb.PlainLength())
		if cap(*buf) < n {
			*buf = make([]byte, n)
		}
		b := (*buf)[:n]
		if _, err := io.ReadFull(f, b); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
		if sha256.Sum256(b) != pb.ID {
			return false, nil
		}
	}
	return true, nil
}

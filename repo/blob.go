package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/escrow-backup/escrow/remote"
)

// OpenBlob decrypts and decompresses one sealed blob and checks that its
// plaintext hashes to its ID. The plaintext is written to buf[:0] when buf
// is large enough (so callers can reuse one buffer), else to a new slice.
func (r *Repository) OpenBlob(pb PackedBlob, sealed []byte, buf []byte) ([]byte, error) {
	return r.openBlob(pb, sealed, buf, false)
}

// OpenBlobInPlace is OpenBlob for a caller that has no further use for
// sealed: it is decrypted where it lies, and an uncompressed blob's
// plaintext is returned inside it, leaving buf unused.
func (r *Repository) OpenBlobInPlace(pb PackedBlob, sealed []byte, buf []byte) ([]byte, error) {
	return r.openBlob(pb, sealed, buf, true)
}

func (r *Repository) openBlob(pb PackedBlob, sealed, buf []byte, inPlace bool) ([]byte, error) {
	if len(sealed) != int(pb.Length) {
		return nil, fmt.Errorf("%s in pack %s: %w: got %d bytes, want %d", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt, len(sealed), pb.Length)
	}
	corrupt := func(err error) error {
		return fmt.Errorf("%s in pack %s: %w: %v", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt, err)
	}
	var dst []byte // where the decrypted bytes go
	switch {
	case inPlace && len(sealed) >= overhead:
		// Open writes the plaintext exactly over the ciphertext.
		dst = sealed[ivSize:ivSize]
	case pb.UncompressedLength == 0:
		dst = buf[:0]
	default:
		zp, _ := r.zbufs.Get().(*[]byte)
		if zp == nil {
			zp = new([]byte)
		}
		defer r.zbufs.Put(zp)
		if cap(*zp) < len(sealed) {
			*zp = make([]byte, 0, len(sealed))
		}
		dst = (*zp)[:0]
	}
	plain, err := r.key.Open(dst, sealed)
	if err != nil {
		return nil, corrupt(err)
	}
	if pb.UncompressedLength != 0 {
		n := int(pb.UncompressedLength)
		if cap(buf) < n {
			buf = make([]byte, 0, n)
		}
		// The decoder stops at cap(dst), and never reallocates it.
		out, err := r.codec.blobDec.DecodeAll(plain, buf[:0:n])
		if err != nil {
			return nil, corrupt(fmt.Errorf("decompress: %v", err))
		}
		if len(out) != n {
			return nil, fmt.Errorf("%s in pack %s: %w: %d bytes after decompression, want %d", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt, len(out), n)
		}
		plain = buf[:n] // with buf's whole capacity, for the caller to reuse
	}
	if Hash(plain) != pb.ID {
		return nil, fmt.Errorf("%s in pack %s: %w: content does not match its ID", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt)
	}
	return plain, nil
}

// LoadBlob reads one blob through the index.
func (r *Repository) LoadBlob(ctx context.Context, h BlobHandle, buf []byte) ([]byte, error) {
	pb, ok := r.idx.Lookup(h)
	if !ok {
		return nil, fmt.Errorf("%s: %w: not in the index", h, ErrMissing)
	}
	if h.Type == TreeBlob {
		sealed, err := r.sealedTree(ctx, pb, r.idx.PackSize(pb.PackID))
		if err != nil && (remote.IsNotFound(err) || ctx.Err() != nil) {
			return nil, err
		}
		if err == nil {
			plain, err := r.OpenBlob(pb, sealed, buf)
			if !errors.Is(err, ErrCorrupt) {
				return plain, err
			}
		}
		// The pack in the cache is not the one the index describes:
		// read the blob alone, from an older version if need be.
		return r.LoadPackedBlob(ctx, pb, buf)
	}
	return r.LoadPackedBlob(ctx, pb, buf)
}

// ErrMissing marks a blob or object the repository should hold but does not.
var ErrMissing = errors.New("missing")

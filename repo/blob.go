package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/escrow-backup/escrow/remote"
)

// OpenBlob decrypts and decompresses one sealed blob and checks that its
// plaintext hashes to its ID. The plaintext is appended to buf[:0].
func (r *Repository) OpenBlob(pb PackedBlob, sealed []byte, buf []byte) ([]byte, error) {
	if len(sealed) != int(pb.Length) {
		return nil, fmt.Errorf("%s in pack %s: %w: got %d bytes, want %d", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt, len(sealed), pb.Length)
	}
	plain, err := r.key.Open(buf[:0], sealed)
	if err != nil {
		return nil, fmt.Errorf("%s in pack %s: %w: %v", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt, err)
	}
	if pb.UncompressedLength != 0 {
		out, err := r.codec.blobDec.DecodeAll(plain, make([]byte, 0, pb.UncompressedLength))
		if err != nil {
			return nil, fmt.Errorf("%s in pack %s: %w: decompress: %v", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt, err)
		}
		if len(out) != int(pb.UncompressedLength) {
			return nil, fmt.Errorf("%s in pack %s: %w: %d bytes after decompression, want %d", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt, len(out), pb.UncompressedLength)
		}
		plain = out
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
		if err != nil {
			return nil, err
		}
		return r.OpenBlob(pb, sealed, buf)
	}
	sealed, err := remote.LoadRange(ctx, r.be, remote.Handle{Type: remote.PackFile, Name: pb.PackID.String()}, int64(pb.Offset), int64(pb.Length))
	if err != nil {
		return nil, fmt.Errorf("load %s from pack %s: %w", h, pb.PackID.Str(), err)
	}
	return r.OpenBlob(pb, sealed, buf)
}

// ErrMissing marks a blob or object the repository should hold but does not.
var ErrMissing = errors.New("missing")

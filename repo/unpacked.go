package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"

	"github.com/escrow-backup/escrow/remote"
)

// Files other than packs and keys (index, snapshots, locks, config) are
// "unpacked": one sealed JSON document each. In format version 2 the
// plaintext is a version byte 2 followed by zstd-compressed JSON, except
// for the config, which stays plain. A plaintext starting with '{' or '['
// is uncompressed JSON, as version 1 wrote it.
const unpackedZstd = 2

// maxUnpackedSize bounds what we decompress from an untrusted object.
const maxUnpackedSize = 512 << 20

// codec compresses and decompresses; zstd encoders and decoders are safe for
// concurrent use through EncodeAll and DecodeAll.
type codec struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

func newCodec(level zstd.EncoderLevel) (*codec, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxUnpackedSize))
	if err != nil {
		return nil, err
	}
	return &codec{enc: enc, dec: dec}, nil
}

func (c *codec) close() { c.dec.Close() }

func (c *codec) decodeUnpacked(plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, errors.New("empty document")
	}
	switch plain[0] {
	case '{', '[':
		return plain, nil
	case unpackedZstd:
		out, err := c.dec.DecodeAll(plain[1:], nil)
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported encoding version %d", plain[0])
}

// SaveJSON encrypts v as an unpacked file of type t and stores it under the
// hash of its stored bytes.
func (r *Repository) SaveJSON(ctx context.Context, t remote.FileType, v any) (ID, error) {
	doc, err := json.Marshal(v)
	if err != nil {
		return ID{}, fmt.Errorf("encode %s: %w", t, err)
	}
	plain := doc
	if t != remote.ConfigFile {
		plain = r.codec.enc.EncodeAll(doc, []byte{unpackedZstd})
	}
	sealed := r.key.Seal(nil, plain)
	id := Hash(sealed)
	h := remote.Handle{Type: t, Name: id.String()}
	if t == remote.ConfigFile {
		h.Name = ""
	}
	if err := r.be.Save(ctx, h, sealed); err != nil {
		return ID{}, fmt.Errorf("save %s: %w", h, err)
	}
	return id, nil
}

// LoadJSON loads, verifies and decodes an unpacked file into v.
func (r *Repository) LoadJSON(ctx context.Context, t remote.FileType, id ID, v any) error {
	h := remote.Handle{Type: t, Name: id.String()}
	if t == remote.ConfigFile {
		h.Name = ""
	}
	sealed, err := remote.LoadAll(ctx, r.be, h)
	if err != nil {
		return fmt.Errorf("load %s: %w", h, err)
	}
	doc, err := r.openUnpacked(h, sealed, t != remote.ConfigFile)
	if err != nil {
		return err
	}
	if err := json.NewDecoder(bytes.NewReader(doc)).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", h, err)
	}
	return nil
}

// openUnpacked checks the name, decrypts and decompresses a stored document.
func (r *Repository) openUnpacked(h remote.Handle, sealed []byte, checkName bool) ([]byte, error) {
	if checkName && Hash(sealed).String() != h.Name {
		return nil, fmt.Errorf("%s: %w: content does not match its name (damaged or replaced)", h, ErrCorrupt)
	}
	plain, err := r.key.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w", h, err)
	}
	if h.Type == remote.ConfigFile {
		return plain, nil
	}
	doc, err := r.codec.decodeUnpacked(plain)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", h, ErrCorrupt, err)
	}
	return doc, nil
}

// ErrCorrupt marks stored data that fails verification.
var ErrCorrupt = errors.New("corrupt")

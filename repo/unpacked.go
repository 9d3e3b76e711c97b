package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"

	"github.com/klauspost/compress/zstd"

	"github.com/escrow-backup/escrow/remote"
)

// Files other than packs and keys (index, snapshots, locks, config) are
// "unpacked": one sealed JSON document each. In format version 2 the
// plaintext is a version byte 2 followed by zstd-compressed JSON, except
// for the config, which stays plain. A plaintext starting with '{' or '['
// is uncompressed JSON, as version 1 wrote it.
const unpackedZstd = 2

// zstdMagic starts every zstd frame (RFC 8878, section 3.1.1).
const zstdMagic = 0xFD2FB528

// maxUnpackedSize bounds what we decompress from an untrusted object.
const maxUnpackedSize = 512 << 20

// codec compresses and decompresses; zstd encoders and decoders are safe for
// concurrent use through EncodeAll and DecodeAll.
type codec struct {
	enc   *zstd.Encoder
	level zstd.EncoderLevel
	// encoders is how many EncodeAll calls can run at once.
	encoders int
	dec      *zstd.Decoder
	// blobDec never decodes past cap(dst): a blob's declared plaintext
	// length bounds what a hostile or damaged blob can make us allocate.
	blobDec *zstd.Decoder
}

// encoderWindow is the zstd window (how far back a match may reach) of
// everything escrow compresses. Each encoder keeps a history buffer of
// about twice the window, so a small window keeps encoders cheap enough to
// have one per core; restic uses the same 512 KiB, and blobs average 1 MiB,
// so a larger one gains little.
const encoderWindow = 512 << 10

func newCodec(level zstd.EncoderLevel) (*codec, error) {
	return newCodecLimit(level, maxUnpackedSize)
}

// newCodecLimit is newCodec with another bound on decoded sizes (tests use
// a small one).
func newCodecLimit(level zstd.EncoderLevel, maxDecoded uint64) (*codec, error) {
	enc, err := newEncoder(level)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxDecoded))
	if err != nil {
		return nil, err
	}
	blobDec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(maxDecoded), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		return nil, err
	}
	return &codec{enc: enc, level: level, encoders: encoderCount(), dec: dec, blobDec: blobDec}, nil
}

// encoderCount is how many blobs an encoder compresses at once: one per
// core, up to 8.
func encoderCount() int { return min(runtime.GOMAXPROCS(0), 8) }

func newEncoder(level zstd.EncoderLevel) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(encoderCount()),
		zstd.WithWindowSize(encoderWindow))
}

func (c *codec) close() {
	c.dec.Close()
	c.blobDec.Close()
}

func (c *codec) decodeUnpacked(plain []byte) ([]byte, error) {
	if len(plain) == 0 {
		return nil, errors.New("empty document")
	}
	switch plain[0] {
	case '{', '[':
		return plain, nil
	case unpackedZstd:
		// The decoder's size limit holds per frame, so a document of many
		// frames could grow to a multiple of it before DecodeAll notices.
		// restic and escrow write one frame; accept only that.
		z := plain[1:]
		n, err := zstdFrameLen(z)
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		if n != len(z) {
			return nil, fmt.Errorf("decompress: %d bytes after the zstd frame", len(z)-n)
		}
		out, err := c.dec.DecodeAll(z, nil)
		if err != nil {
			return nil, fmt.Errorf("decompress: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported encoding version %d", plain[0])
}

// zstdFrameLen returns the length of the zstd frame at the start of b by
// walking its header and block headers, without decoding (RFC 8878,
// section 3.1.1). The decoder checks everything else.
func zstdFrameLen(b []byte) (int, error) {
	if len(b) < 5 || binary.LittleEndian.Uint32(b) != zstdMagic {
		return 0, errors.New("not a zstd frame")
	}
	desc := b[4]
	if desc&0x08 != 0 {
		return 0, errors.New("zstd frame header: reserved bit set")
	}
	n := 5
	singleSegment := desc&0x20 != 0
	if !singleSegment {
		n++ // window descriptor
	}
	n += [4]int{0, 1, 2, 4}[desc&3] // dictionary ID
	fcs := [4]int{0, 2, 4, 8}[desc>>6]
	if fcs == 0 && singleSegment {
		fcs = 1
	}
	n += fcs
	for last := false; !last; {
		if len(b)-n < 3 {
			return 0, errors.New("zstd frame truncated")
		}
		h := uint32(b[n]) | uint32(b[n+1])<<8 | uint32(b[n+2])<<16
		n += 3
		last = h&1 != 0
		switch (h >> 1) & 3 {
		case 0, 2: // raw, compressed: the size is what follows
			n += int(h >> 3)
		case 1: // RLE: one byte, repeated
			n++
		default:
			return 0, errors.New("zstd frame: reserved block type")
		}
		if n > len(b) {
			return 0, errors.New("zstd frame truncated")
		}
	}
	if desc&0x04 != 0 {
		n += 4 // content checksum
	}
	if n > len(b) {
		return 0, errors.New("zstd frame truncated")
	}
	return n, nil
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
		// The ID goes with the error: a store may keep an upload whose
		// answer was lost, and a lock holder must release such a file too.
		return id, fmt.Errorf("save %s: %w", h, err)
	}
	return id, nil
}

// LoadJSON loads, verifies and decodes an unpacked file into v.
func (r *Repository) LoadJSON(ctx context.Context, t remote.FileType, id ID, v any) error {
	h := remote.Handle{Type: t, Name: id.String()}
	if t == remote.ConfigFile {
		h.Name = ""
	}
	// Valid JSON is part of the check: a config the key decrypts but that
	// is not JSON must not end the fallback to an older version.
	var doc []byte
	err := r.fb.load(ctx, h, 0, 0, func(sealed []byte) error {
		d, err := r.openUnpacked(h, sealed, t != remote.ConfigFile)
		if err != nil {
			return err
		}
		if !json.Valid(d) {
			return fmt.Errorf("decode %s: %w: not valid JSON", h, ErrCorrupt)
		}
		doc = d
		return nil
	})
	switch {
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrUnauthenticated):
		return err
	case err != nil:
		return fmt.Errorf("load %s: %w", h, err)
	}
	if err := json.NewDecoder(bytes.NewReader(doc)).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w: %v", h, ErrCorrupt, err)
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

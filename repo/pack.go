package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A pack file is EncryptedBlob1 || ... || EncryptedBlobN || EncryptedHeader ||
// HeaderLength, where HeaderLength is the sealed header's size as a 4-byte
// little-endian integer. The header lists each blob in order, so offsets
// follow from the lengths. Data and tree blobs never share a pack.
const (
	headerLengthSize = 4
	entrySize        = 1 + 4 + IDSize     // type, sealed length, ID
	entrySizeZ       = 1 + 4 + 4 + IDSize // type, sealed length, plain length, ID

	// maxHeaderSize bounds what we load and decrypt from an untrusted pack.
	maxHeaderSize = 16 << 20
	// maxBlobSize bounds a single sealed blob; chunks are at most 8 MiB and
	// trees are split long before this.
	maxBlobSize = 64 << 20
)

// Header type bytes.
const (
	hdrData   = 0
	hdrTree   = 1
	hdrDataZ  = 2
	hdrTreeZ  = 3
	hdrTypeZ  = 2 // the "compressed" bit
	hdrTypeMk = 1 // the "tree" bit
)

// PackedBlob is one blob's place in a pack.
type PackedBlob struct {
	BlobHandle
	PackID ID
	Offset uint32
	Length uint32 // sealed length in the pack
	// UncompressedLength is the plaintext length for compressed blobs, 0 otherwise.
	UncompressedLength uint32
}

// PlainLength is the length of the blob's plaintext.
func (b PackedBlob) PlainLength() uint32 {
	if b.UncompressedLength != 0 {
		return b.UncompressedLength
	}
	if b.Length < overhead {
		return 0
	}
	return b.Length - overhead
}

// encodeHeader builds the plaintext header for blobs in pack order.
func encodeHeader(blobs []PackedBlob) []byte {
	buf := make([]byte, 0, len(blobs)*entrySizeZ)
	for _, b := range blobs {
		t := byte(hdrData)
		if b.Type == TreeBlob {
			t |= hdrTypeMk
		}
		if b.UncompressedLength != 0 {
			t |= hdrTypeZ
		}
		buf = append(buf, t)
		buf = binary.LittleEndian.AppendUint32(buf, b.Length)
		if b.UncompressedLength != 0 {
			buf = binary.LittleEndian.AppendUint32(buf, b.UncompressedLength)
		}
		buf = append(buf, b.ID[:]...)
	}
	return buf
}

// ParseHeader decodes a decrypted pack header. It checks that every blob lies
// inside the first dataSize bytes of the pack, so a damaged or hostile header
// can never make a reader run past the blobs.
func ParseHeader(hdr []byte, packID ID, dataSize int64) ([]PackedBlob, error) {
	var blobs []PackedBlob
	var off int64
	for len(hdr) > 0 {
		t := hdr[0]
		b := PackedBlob{PackID: packID}
		switch t {
		case hdrData, hdrTree:
			if len(hdr) < entrySize {
				return nil, errors.New("pack header: truncated entry")
			}
			b.Length = binary.LittleEndian.Uint32(hdr[1:5])
			copy(b.ID[:], hdr[5:entrySize])
			hdr = hdr[entrySize:]
		case hdrDataZ, hdrTreeZ:
			if len(hdr) < entrySizeZ {
				return nil, errors.New("pack header: truncated entry")
			}
			b.Length = binary.LittleEndian.Uint32(hdr[1:5])
			b.UncompressedLength = binary.LittleEndian.Uint32(hdr[5:9])
			if b.UncompressedLength == 0 || b.UncompressedLength > maxUnpackedSize {
				return nil, fmt.Errorf("pack header: compressed blob with invalid length %d", b.UncompressedLength)
			}
			copy(b.ID[:], hdr[9:entrySizeZ])
			hdr = hdr[entrySizeZ:]
		default:
			return nil, fmt.Errorf("pack header: invalid blob type %d", t)
		}
		b.Type = DataBlob
		if t&hdrTypeMk != 0 {
			b.Type = TreeBlob
		}
		if b.Length < overhead || b.Length > maxBlobSize {
			return nil, fmt.Errorf("pack header: blob %s has invalid length %d", b.ID.Str(), b.Length)
		}
		b.Offset = uint32(off)
		off += int64(b.Length)
		if off > dataSize {
			return nil, fmt.Errorf("pack header: blobs end at %d, past the %d bytes of blob data", off, dataSize)
		}
		// Offsets are 32 bits here and in the index: past 4 GiB they would
		// wrap and point at the wrong blob.
		if off > math.MaxUint32 {
			return nil, fmt.Errorf("pack header: blobs end at %d, past the 4 GiB a pack may hold", off)
		}
		blobs = append(blobs, b)
	}
	if off != dataSize {
		return nil, fmt.Errorf("pack header: blobs cover %d bytes, pack holds %d", off, dataSize)
	}
	return blobs, nil
}

// PackSize is the size a pack holding exactly blobs must have.
func PackSize(blobs []PackedBlob) int64 {
	var n int64
	for _, b := range blobs {
		n += int64(b.Length)
		if b.UncompressedLength != 0 {
			n += entrySizeZ
		} else {
			n += entrySize
		}
	}
	return n + overhead + headerLengthSize
}

// parsePackTail splits a pack's trailer: given the last bytes of the pack
// (at least headerLengthSize), it returns the sealed header's length.
func parsePackTail(tail []byte, packSize int64) (int64, error) {
	if len(tail) < headerLengthSize || packSize < headerLengthSize+overhead {
		return 0, fmt.Errorf("pack of %d bytes is too short", packSize)
	}
	n := int64(binary.LittleEndian.Uint32(tail[len(tail)-headerLengthSize:]))
	if n < overhead || n > maxHeaderSize || n > packSize-headerLengthSize {
		return 0, fmt.Errorf("pack header length %d is invalid for a pack of %d bytes", n, packSize)
	}
	return n, nil
}

// DecodePack parses a whole pack file (already read into memory): it
// decrypts the header and returns the blobs it lists.
func (k *Key) DecodePack(pack []byte, packID ID) ([]PackedBlob, error) {
	hlen, err := parsePackTail(pack, int64(len(pack)))
	if err != nil {
		return nil, err
	}
	end := int64(len(pack)) - headerLengthSize
	sealed := pack[end-hlen : end]
	hdr, err := k.Open(nil, sealed)
	if err != nil {
		return nil, fmt.Errorf("pack header: %w", err)
	}
	return ParseHeader(hdr, packID, end-hlen)
}

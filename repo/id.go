// Package repo reads and writes restic repositories, format version 2.
//
// The layout, the write order (packs, then index, then snapshot) and the
// encryption are described in docs/design.md. Everything read from the store
// is untrusted: decoders check lengths and types before trusting them, and
// every object's name is checked against the hash of its content.
package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// IDSize is the length of an ID in bytes.
const IDSize = sha256.Size

// ID is the SHA-256 of a blob's plaintext or of an object's stored bytes.
type ID [IDSize]byte

// Hash returns the ID of data.
func Hash(data []byte) ID { return sha256.Sum256(data) }

// ParseID decodes a 64-digit hex ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("invalid ID %q: want %d hex digits", shorten(s), 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("invalid ID %q: %w", shorten(s), err)
	}
	return id, nil
}

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Str is the short form used in messages.
func (id ID) Str() string { return hex.EncodeToString(id[:4]) }

// IsNull reports whether the ID is all zeros.
func (id ID) IsNull() bool { return id == ID{} }

// MarshalJSON encodes the ID as a hex string.
func (id ID) MarshalJSON() ([]byte, error) {
	buf := make([]byte, 2*IDSize+2)
	buf[0] = '"'
	hex.Encode(buf[1:], id[:])
	buf[len(buf)-1] = '"'
	return buf, nil
}

// UnmarshalJSON decodes a hex string.
func (id *ID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("invalid ID: %w", err)
	}
	v, err := ParseID(s)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

func shorten(s string) string {
	if len(s) > 70 {
		return s[:70] + "…"
	}
	return s
}

// BlobType tells data blobs (file content) from tree blobs (directories).
type BlobType uint8

// Blob types. Their values are not the pack header's type bytes.
const (
	InvalidBlob BlobType = iota
	DataBlob
	TreeBlob
)

func (t BlobType) String() string {
	switch t {
	case DataBlob:
		return "data"
	case TreeBlob:
		return "tree"
	}
	return fmt.Sprintf("invalid(%d)", uint8(t))
}

// MarshalJSON encodes the type as restic's index does.
func (t BlobType) MarshalJSON() ([]byte, error) {
	switch t {
	case DataBlob:
		return []byte(`"data"`), nil
	case TreeBlob:
		return []byte(`"tree"`), nil
	}
	return nil, fmt.Errorf("invalid blob type %d", uint8(t))
}

// UnmarshalJSON decodes "data" or "tree".
func (t *BlobType) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"data"`:
		*t = DataBlob
	case `"tree"`:
		*t = TreeBlob
	default:
		return fmt.Errorf("invalid blob type %s", shorten(string(b)))
	}
	return nil
}

// BlobHandle identifies a blob: the same bytes as a tree and as data are
// different blobs.
type BlobHandle struct {
	ID   ID
	Type BlobType
}

func (h BlobHandle) String() string { return h.Type.String() + " blob " + h.ID.Str() }

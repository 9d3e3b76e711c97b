package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"

	//lint:ignore SA1019 the restic format fixes Poly1305-AES; each message gets its own one-time key (AES_k(nonce)), as that construction requires.
	"golang.org/x/crypto/poly1305"
	"golang.org/x/crypto/scrypt"
)

// Every encrypted object is IV || AES-256-CTR(plaintext) || Poly1305-AES MAC.
const (
	ivSize   = aes.BlockSize
	macSize  = poly1305.TagSize
	overhead = ivSize + macSize // 32 bytes
)

// ErrUnauthenticated means a MAC did not verify: the data was damaged or
// tampered with, or the key is wrong.
var ErrUnauthenticated = errors.New("ciphertext verification failed")

// macKey is the Poly1305-AES key: k keys the AES that turns the nonce into
// Poly1305's second half; r is Poly1305's (masked) first half.
type macKey struct {
	K [16]byte
	R [16]byte
}

// Key holds the master keys that encrypt and authenticate everything in the
// repository except the key files themselves.
type Key struct {
	encrypt [32]byte
	mac     macKey
}

// poly1305 needs r with some bits cleared (Bernstein's paper, section 2).
var rMask = [16]byte{0xff, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f, 0xfc, 0xff, 0xff, 0x0f}

func (m *macKey) maskR() {
	for i := range m.R {
		m.R[i] &= rMask[i]
	}
}

// NewRandomKey returns fresh master keys.
func NewRandomKey() (*Key, error) {
	k := &Key{}
	if _, err := rand.Read(k.encrypt[:]); err != nil {
		return nil, fmt.Errorf("read random key: %w", err)
	}
	if _, err := rand.Read(k.mac.K[:]); err != nil {
		return nil, fmt.Errorf("read random key: %w", err)
	}
	if _, err := rand.Read(k.mac.R[:]); err != nil {
		return nil, fmt.Errorf("read random key: %w", err)
	}
	k.mac.maskR()
	return k, nil
}

// KDFParams are scrypt's cost parameters, stored in each key file.
type KDFParams struct {
	N, R, P int
}

// DefaultKDFParams cost about 32 MiB and a few hundred milliseconds on a
// small server: slow enough to make guessing expensive, fast enough for an
// agent that opens the repository on every run.
var DefaultKDFParams = KDFParams{N: 1 << 15, R: 8, P: 1}

// deriveKey turns a password into the key that unlocks a key file: 32 bytes
// of AES key, then 16 bytes of MAC k and 16 of MAC r.
func deriveKey(p KDFParams, salt []byte, password string) (*Key, error) {
	if p.N < 2 || p.N&(p.N-1) != 0 || p.N > 1<<24 || p.R < 1 || p.R > 64 || p.P < 1 || p.P > 16 {
		return nil, fmt.Errorf("unsupported scrypt parameters N=%d r=%d p=%d", p.N, p.R, p.P)
	}
	b, err := scrypt.Key([]byte(password), salt, p.N, p.R, p.P, 64)
	if err != nil {
		return nil, fmt.Errorf("scrypt: %w", err)
	}
	k := &Key{}
	copy(k.encrypt[:], b[:32])
	copy(k.mac.K[:], b[32:48])
	copy(k.mac.R[:], b[48:64])
	k.mac.maskR()
	return k, nil
}

func (k *Key) tag(nonce, ciphertext []byte) [macSize]byte {
	var pk [32]byte
	c, err := aes.NewCipher(k.mac.K[:])
	if err != nil {
		panic(err) // a 16-byte key never fails
	}
	copy(pk[:16], k.mac.R[:])
	c.Encrypt(pk[16:], nonce)
	var tag [macSize]byte
	poly1305.Sum(&tag, ciphertext, &pk)
	return tag
}

// Seal appends IV || ciphertext || MAC of plaintext to dst, with a fresh
// random IV. Never reuse an IV: CTR mode leaks everything if one repeats.
func (k *Key) Seal(dst, plaintext []byte) []byte {
	start := len(dst)
	dst = grow(dst, overhead+len(plaintext))
	out := dst[start:]
	iv := out[:ivSize]
	if _, err := rand.Read(iv); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the OS is broken; writing anything would be unsafe
	}
	c, err := aes.NewCipher(k.encrypt[:])
	if err != nil {
		panic(err)
	}
	ct := out[ivSize : ivSize+len(plaintext)]
	cipher.NewCTR(c, iv).XORKeyStream(ct, plaintext)
	tag := k.tag(iv, ct)
	copy(out[ivSize+len(plaintext):], tag[:])
	return dst
}

// Open verifies and decrypts a sealed object, appending the plaintext to dst.
func (k *Key) Open(dst, sealed []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, fmt.Errorf("%w: %d bytes is shorter than IV and MAC", ErrUnauthenticated, len(sealed))
	}
	iv := sealed[:ivSize]
	ct := sealed[ivSize : len(sealed)-macSize]
	tag := k.tag(iv, ct)
	if subtle.ConstantTimeCompare(tag[:], sealed[len(sealed)-macSize:]) != 1 {
		return nil, ErrUnauthenticated
	}
	start := len(dst)
	dst = grow(dst, len(ct))
	c, err := aes.NewCipher(k.encrypt[:])
	if err != nil {
		panic(err)
	}
	cipher.NewCTR(c, iv).XORKeyStream(dst[start:], ct)
	return dst, nil
}

// grow extends b by n bytes, reallocating only when needed.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*len(b)+n)
	copy(nb, b)
	return nb
}

// masterKeyJSON is the key file's decrypted payload, as restic writes it.
type masterKeyJSON struct {
	MAC struct {
		K []byte `json:"k"`
		R []byte `json:"r"`
	} `json:"mac"`
	Encrypt []byte `json:"encrypt"`
}

func (k *Key) toJSON() masterKeyJSON {
	var j masterKeyJSON
	j.MAC.K = k.mac.K[:]
	j.MAC.R = k.mac.R[:]
	j.Encrypt = k.encrypt[:]
	return j
}

func keyFromJSON(j masterKeyJSON) (*Key, error) {
	if len(j.MAC.K) != 16 || len(j.MAC.R) != 16 || len(j.Encrypt) != 32 {
		return nil, errors.New("master key has wrong lengths")
	}
	k := &Key{}
	copy(k.mac.K[:], j.MAC.K)
	copy(k.mac.R[:], j.MAC.R)
	copy(k.encrypt[:], j.Encrypt)
	var zero Key
	if k.encrypt == zero.encrypt || k.mac.K == zero.mac.K || k.mac.R == zero.mac.R {
		return nil, errors.New("master key is all zeros")
	}
	k.mac.maskR()
	return k, nil
}

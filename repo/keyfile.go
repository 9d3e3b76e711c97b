package repo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// ErrWrongPassword means no key file in the repository opens with the given password.
var ErrWrongPassword = errors.New("wrong password: no key in the repository matches it")

// maxKeysTried bounds the scrypt work a repository full of key files can make us do.
const maxKeysTried = 20

// maxKDFMemory bounds the memory scrypt may use for one key file's
// parameters: 128·N·r bytes. Key files are not authenticated, so without the
// bound anyone who can write to the store could plant one that makes every
// open try to allocate up to 128 GiB and kill the agent. restic calibrates
// its keys to at most 60 MiB; escrow's default takes 32 MiB.
const maxKDFMemory = 1 << 30

// keyFile is a file under keys/: the master key encrypted with a key derived
// from one password. Key files are plain JSON, not encrypted themselves.
type keyFile struct {
	Created  time.Time `json:"created"`
	Username string    `json:"username"`
	Hostname string    `json:"hostname"`
	KDF      string    `json:"kdf"`
	N        int       `json:"N"`
	R        int       `json:"r"`
	P        int       `json:"p"`
	Salt     []byte    `json:"salt"`
	Data     []byte    `json:"data"`
}

func parseKeyFile(data []byte) (*keyFile, error) {
	var kf keyFile
	if err := json.Unmarshal(data, &kf); err != nil {
		return nil, fmt.Errorf("decode key file: %w", err)
	}
	if kf.KDF != "scrypt" {
		return nil, fmt.Errorf("unsupported key derivation %q", kf.KDF)
	}
	if len(kf.Salt) == 0 || len(kf.Data) < overhead {
		return nil, errors.New("key file lacks salt or data")
	}
	// deriveKey checks the rest; the products here must not overflow.
	if kf.N <= 0 || kf.R <= 0 || kf.P <= 0 || kf.N > maxKDFMemory/128/kf.R {
		return nil, fmt.Errorf("scrypt parameters N=%d r=%d p=%d are out of range", kf.N, kf.R, kf.P)
	}
	return &kf, nil
}

// open derives the password key and decrypts the master key.
func (kf *keyFile) open(password string) (*Key, error) {
	pk, err := deriveKey(KDFParams{N: kf.N, R: kf.R, P: kf.P}, kf.Salt, password)
	if err != nil {
		return nil, err
	}
	plain, err := pk.Open(nil, kf.Data)
	if err != nil {
		return nil, ErrWrongPassword
	}
	var j masterKeyJSON
	if err := json.Unmarshal(plain, &j); err != nil {
		return nil, fmt.Errorf("decode master key: %w", err)
	}
	return keyFromJSON(j)
}

// newKeyFile encrypts master under password. Empty user or host names
// default to this process's, as restic records them.
func newKeyFile(master *Key, password string, p KDFParams, o KeyOptions) ([]byte, error) {
	salt := make([]byte, 64)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("read random salt: %w", err)
	}
	pk, err := deriveKey(p, salt, password)
	if err != nil {
		return nil, err
	}
	mk, err := json.Marshal(master.toJSON())
	if err != nil {
		return nil, err
	}
	kf := keyFile{
		Created: time.Now(),
		KDF:     "scrypt",
		N:       p.N, R: p.R, P: p.P,
		Salt: salt,
		Data: pk.Seal(nil, mk),
	}
	kf.Username, kf.Hostname = o.Username, o.Hostname
	if kf.Hostname == "" {
		kf.Hostname, _ = os.Hostname()
	}
	if u, err := user.Current(); err == nil && kf.Username == "" {
		kf.Username = u.Username
	}
	return json.Marshal(kf)
}

// addKey stores a new key file for master and returns its ID.
func addKey(ctx context.Context, be remote.Backend, master *Key, password string, p KDFParams, o KeyOptions) (ID, error) {
	data, err := newKeyFile(master, password, p, o)
	if err != nil {
		return ID{}, err
	}
	id := Hash(data)
	if err := be.Save(ctx, remote.Handle{Type: remote.KeyFile, Name: id.String()}, data); err != nil {
		return ID{}, fmt.Errorf("save key file: %w", err)
	}
	return id, nil
}

// searchKey tries the key files until one opens with password.
func searchKey(ctx context.Context, fb *fallback, password string) (*Key, ID, error) {
	be := fb.be
	var names []string
	err := be.List(ctx, remote.KeyFile, func(fi remote.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	if err != nil {
		return nil, ID{}, fmt.Errorf("list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, ID{}, fmt.Errorf("no key files in %s: %w", be.Location(), remote.ErrNotFound)
	}
	var lastErr error = ErrWrongPassword
	tried, damaged := 0, 0
	for i, name := range names {
		if i >= maxKeysTried {
			break
		}
		kf, id, err := loadKeyFile(ctx, fb, name)
		switch {
		case errors.Is(err, ErrCorrupt):
			tried++
			damaged++
			lastErr = err
			continue
		case err != nil && id.IsNull():
			continue // not a key file's name
		case err != nil:
			return nil, ID{}, err
		}
		tried++
		k, err := kf.open(password)
		if err == nil {
			return k, id, nil
		}
		if !errors.Is(err, ErrWrongPassword) {
			lastErr = fmt.Errorf("key file %s: %w", id.Str(), err)
		}
	}
	// Every key file is damaged: no password could open the repository,
	// and saying "wrong password" would send the owner looking for another.
	if tried > 0 && damaged == tried {
		return nil, ID{}, fmt.Errorf("no usable key in %s: every key file is damaged (%v); the password cannot be checked: put back an intact copy of the keys/ folder, e.g. from an older version of the bucket (see `escrow restore --as-of`)", be.Location(), lastErr)
	}
	if errors.Is(lastErr, ErrWrongPassword) {
		return nil, ID{}, ErrWrongPassword
	}
	return nil, ID{}, fmt.Errorf("%w (%v)", ErrWrongPassword, lastErr)
}

package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// Key management follows restic's: every key file holds the same master
// key under a different password, so adding or removing one never touches
// anything else in the repository, and restic lists and opens the keys
// escrow writes (and the other way round).
//
// Invariant: the repository always has a key that opens it. AddKey stores
// and reads back the new key before returning; RemoveKey refuses the key in
// use and the last key; ChangePassword adds the new key before it removes
// the old one, so an interruption leaves both working, never neither.
//
// Removing a key deletes an object. The backing-up host's credentials are
// not meant to allow that (the escrow's guarantee rests on it), so remove
// and change-password are owner operations, run with the owner's
// credentials; listing and adding work with the host's.

// Errors RemoveKey returns for keys it must not remove.
var (
	ErrKeyInUse = errors.New("it is the key this command opened the repository with")
	ErrLastKey  = errors.New("it is the repository's only key: without a key nobody can ever read the repository again")
)

// MaxKeysTried is how many key files escrow (like restic) tries when
// opening a repository; the passwords of key files past it may not open it.
const MaxKeysTried = maxKeysTried

// KeyInfo describes a key file, without secrets.
type KeyInfo struct {
	ID       ID
	Created  time.Time
	Username string
	Hostname string
	KDF      KDFParams
	// Current is true for the key the repository was opened with.
	Current bool
	// Problem says why the key file cannot be used (damaged, unknown key
	// derivation); empty for a sound one. Such files are listed so the
	// owner sees them, and never counted as working keys.
	Problem string
}

// KeyOptions are what a new key file records besides the password.
type KeyOptions struct {
	// Username and Hostname default to this process's user and host.
	Username, Hostname string
}

// loadKeyFile reads and decodes the key file name, checking it against its
// name.
func loadKeyFile(ctx context.Context, fb *fallback, name string) (*keyFile, ID, error) {
	id, err := ParseID(name)
	if err != nil {
		return nil, ID{}, fmt.Errorf("key file name %q is not an ID", name)
	}
	var data []byte
	err = fb.load(ctx, remote.Handle{Type: remote.KeyFile, Name: name}, 0, 0, func(b []byte) error {
		if Hash(b) != id {
			return fmt.Errorf("key file %s does not match its name (damaged or replaced): %w", id.Str(), ErrCorrupt)
		}
		data = b
		return nil
	})
	if errors.Is(err, ErrCorrupt) {
		return nil, id, err
	}
	if err != nil {
		return nil, id, fmt.Errorf("load key %s: %w", id.Str(), err)
	}
	kf, err := parseKeyFile(data)
	if err != nil {
		return nil, id, fmt.Errorf("key file %s: %w: %w", id.Str(), ErrCorrupt, err)
	}
	return kf, id, nil
}

// Keys lists the repository's key files, oldest first. A key file that
// cannot be decoded is listed with its Problem; a storage error fails the
// listing.
func (r *Repository) Keys(ctx context.Context) ([]KeyInfo, error) {
	ids, err := r.List(ctx, remote.KeyFile)
	if err != nil {
		return nil, err
	}
	var out []KeyInfo
	for _, id := range ids {
		ki := KeyInfo{ID: id, Current: id == r.keyID}
		kf, _, err := loadKeyFile(ctx, r.fb, id.String())
		switch {
		case remote.IsNotFound(err):
			continue // removed meanwhile
		case errors.Is(err, ErrCorrupt):
			ki.Problem = err.Error()
		case err != nil:
			return nil, err
		default:
			ki.Created, ki.Username, ki.Hostname = kf.Created, kf.Username, kf.Hostname
			ki.KDF = KDFParams{N: kf.N, R: kf.R, P: kf.P}
		}
		out = append(out, ki)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return bytes.Compare(out[i].ID[:], out[j].ID[:]) < 0
	})
	return out, nil
}

// FindKey resolves a key ID or a unique prefix of one.
func (r *Repository) FindKey(ctx context.Context, prefix string) (ID, error) {
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if prefix == "" {
		return ID{}, errors.New("empty key ID")
	}
	ids, err := r.List(ctx, remote.KeyFile)
	if err != nil {
		return ID{}, err
	}
	var found []ID
	for _, id := range ids {
		if strings.HasPrefix(id.String(), prefix) {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return ID{}, fmt.Errorf("no key %q in %s: %w", prefix, r.be.Location(), remote.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return ID{}, fmt.Errorf("key ID prefix %q matches %d keys; give more of the ID", prefix, len(found))
}

// AddKey stores a key file for password holding the same master key, then
// reads it back and opens it with password, so that a key this returns is
// known to work. It returns the new key's ID.
func (r *Repository) AddKey(ctx context.Context, password string, o KeyOptions) (ID, error) {
	if password == "" {
		return ID{}, errors.New("empty password")
	}
	id, err := addKey(ctx, r.be, r.key, password, r.opts.KDF, o)
	if err != nil {
		return ID{}, err
	}
	kf, _, err := loadKeyFile(ctx, r.fb, id.String())
	if err != nil {
		return id, fmt.Errorf("read back the new key %s: %w", id.Str(), err)
	}
	k, err := kf.open(password)
	if err != nil {
		return id, fmt.Errorf("the new key %s does not open as written: %w", id.Str(), err)
	}
	if *k != *r.key {
		return id, fmt.Errorf("the new key %s holds another master key", id.Str())
	}
	return id, nil
}

// RemoveKey deletes the key file id. It refuses the key the repository was
// opened with and the last key that works. Callers serialise removals with
// an exclusive lock: two owners removing each other's keys at once could
// otherwise remove both.
func (r *Repository) RemoveKey(ctx context.Context, id ID) error {
	keys, err := r.Keys(ctx)
	if err != nil {
		return err
	}
	found, others := false, 0
	for _, k := range keys {
		switch {
		case k.ID == id:
			found = true
		case k.Problem == "":
			others++
		}
	}
	switch {
	case !found:
		return fmt.Errorf("no key %s in %s: %w", id.Str(), r.be.Location(), remote.ErrNotFound)
	case others == 0:
		return fmt.Errorf("refusing to remove key %s: %w", id.Str(), ErrLastKey)
	case id == r.keyID:
		return fmt.Errorf("refusing to remove key %s: %w", id.Str(), ErrKeyInUse)
	}
	if err := r.be.Remove(ctx, remote.Handle{Type: remote.KeyFile, Name: id.String()}); err != nil {
		return fmt.Errorf("remove key %s: %w", id.Str(), err)
	}
	return nil
}

// ErrOldKeyKept means ChangePassword added the new key but could not remove
// the old one: both passwords open the repository.
var ErrOldKeyKept = errors.New("the old key was not removed")

// ChangePassword replaces the key the repository was opened with by one for
// newPassword and returns the new key's ID. The new key is stored and
// verified first; only then is the old one removed, so at every moment one
// of the two opens the repository. If the removal fails, the returned ID is
// the new key's and the error matches ErrOldKeyKept: the repository then
// opens with either password until the old key is removed.
func (r *Repository) ChangePassword(ctx context.Context, newPassword string, o KeyOptions) (ID, error) {
	old := r.keyID
	id, err := r.AddKey(ctx, newPassword, o)
	if err != nil {
		return ID{}, err
	}
	r.keyID = id
	if old.IsNull() {
		return id, nil
	}
	err = r.be.Remove(ctx, remote.Handle{Type: remote.KeyFile, Name: old.String()})
	if err != nil && !remote.IsNotFound(err) {
		return id, fmt.Errorf("the new key %s works, but %w (%s): %w", id.Str(), ErrOldKeyKept, old.Str(), err)
	}
	return id, nil
}

package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"
)

// The confirmation is a file in the agent's state directory, not in the
// repository: it only steers the agent's reminders on this server, and
// the server is exactly what the kit must not depend on. It records which
// repository the kit was confirmed for, so that pointing the agent at
// another repository brings the reminders back.

// ConfirmFile is the confirmation's name in the state directory.
const ConfirmFile = "kit-confirmed"

// Warning is what status, the logs and notifications say until the owner
// confirms the kit.
const Warning = "recovery kit not confirmed: run escrow kit, store it off this server, then escrow kit confirm"

// Confirmation records that the owner stored the kit of a repository.
type Confirmation struct {
	Time         time.Time `json:"time"`
	RepositoryID string    `json:"repository_id"`
	// Repository is the address as the agent reports it.
	Repository string `json:"repository"`
	// KeyID is the key the confirmed kit's password opened.
	KeyID string `json:"key_id,omitempty"`
}

// Confirm writes c into stateDir (created 0700 if missing), replacing any
// earlier confirmation atomically; the file is 0600.
func Confirm(stateDir string, c Confirmation) error {
	if !hexID.MatchString(c.RepositoryID) {
		return fmt.Errorf("confirm the kit: repository ID %q is not 64 hex digits", c.RepositoryID)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("state directory %s: %w", stateDir, err)
	}
	if err := WriteFile(filepath.Join(stateDir, ConfirmFile), append(data, '\n'), true); err != nil {
		return fmt.Errorf("confirm the kit: %w", err)
	}
	return nil
}

// ReadConfirmation returns the confirmation in stateDir; ok is false when
// there is none.
func ReadConfirmation(stateDir string) (c Confirmation, ok bool, err error) {
	name := filepath.Join(stateDir, ConfirmFile)
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return Confirmation{}, false, nil
	}
	if err != nil {
		return Confirmation{}, false, fmt.Errorf("read the kit confirmation: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil || !hexID.MatchString(c.RepositoryID) {
		return Confirmation{}, false, fmt.Errorf("the kit confirmation %s is damaged; run escrow kit confirm again", name)
	}
	return c, true, nil
}

// Confirmed reports whether the owner confirmed storing the kit of the
// repository repoID, and when. An empty repoID accepts a confirmation for
// any repository.
func Confirmed(stateDir, repoID string) (time.Time, bool, error) {
	c, ok, err := ReadConfirmation(stateDir)
	if err != nil || !ok || repoID != "" && c.RepositoryID != repoID {
		return time.Time{}, false, err
	}
	return c.Time, true, nil
}

// Remind logs Warning now and then every interval for as long as the kit of
// repoID is not confirmed, until ctx ends. The agent runs it for its whole
// life (the confirmation may come at any time, and a new repository brings
// the reminders back).
func Remind(ctx context.Context, log *slog.Logger, stateDir, repoID string, every time.Duration) {
	check := func() {
		_, ok, err := Confirmed(stateDir, repoID)
		switch {
		case err != nil:
			log.Warn(Warning, "err", err)
		case !ok:
			log.Warn(Warning, "state_dir", stateDir)
		}
	}
	check()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// WriteFile writes a file that holds secrets, mode 0600 from its creation
// (never readable by others, whatever the umask). Without overwrite, an
// existing file is an error matching fs.ErrExist; with it, the new content
// replaces the old atomically.
func WriteFile(name string, data []byte, overwrite bool) error {
	if !overwrite {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists (use --force to replace it): %w", name, fs.ErrExist)
		}
		if err != nil {
			return err
		}
		if err := writeClose(f, data); err != nil {
			os.Remove(name)
			return err
		}
		return nil
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if err := writeClose(f, data); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

func writeClose(f *os.File, data []byte) error {
	err := PrivateFile(f)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// PrivateFile makes sure nobody but its owner can read f, before any secret
// goes in: a file that group or others could read is made 0600, and one
// that cannot be (a file system without permissions) is an error.
func PrivateFile(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	err = f.Chmod(fi.Mode().Perm() &^ 0o077)
	if err == nil {
		// Some file systems accept the chmod and ignore it.
		if fi, err = f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
			err = errors.New("the file system keeps it readable by others")
		}
	}
	if err != nil {
		return fmt.Errorf("cannot make %s readable by its owner only: %w", f.Name(), err)
	}
	return nil
}

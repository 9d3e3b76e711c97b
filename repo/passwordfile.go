package repo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// MaxPasswordFile bounds what is read as a password file: far above any
// real password (a 1 MiB password works), low enough that pointing at the
// wrong file (a dump, /dev/zero) fails at once instead of filling memory.
const MaxPasswordFile = 16 << 20

// ReadPasswordFile returns the repository password a file holds: its whole
// content less one final line end ("\n" or "\r\n"). The command line, the
// agent and setup all read password files here, so one file always gives
// one password. Errors name the file and never hold its content.
//
// restic, given the same file with -p, trims white space at both ends;
// CheckNewPassword keeps new passwords to those both read alike, while
// a password made before is still read as it always was.
func ReadPasswordFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxPasswordFile+1))
	if err != nil {
		return "", fmt.Errorf("password file %s: %w", name, err)
	}
	if len(b) > MaxPasswordFile {
		return "", fmt.Errorf("password file %s is larger than %d MiB: is it the right file?", name, MaxPasswordFile>>20)
	}
	p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if p == "" {
		return "", fmt.Errorf("password file %s is empty: put the repository password in it", name)
	}
	return p, nil
}

// ErrPasswordRestic means a new password would read differently in restic.
var ErrPasswordRestic = errors.New("restic would read another password from a file holding it")

// CheckNewPassword refuses, for a new key, a password that restic would
// read differently from a password file (restic -p FILE trims white space
// at both ends) or that spans several lines: the repository must open
// with restic and the same file.
func CheckNewPassword(p string) error {
	switch {
	case p == "":
		return errors.New("empty password")
	case strings.ContainsAny(p, "\n\r"):
		return fmt.Errorf("%w: the password has several lines (restic -p FILE keeps them, older escrow agents took the first); use one line", ErrPasswordRestic)
	case strings.TrimSpace(p) != p:
		return fmt.Errorf("%w: the password begins or ends with white space, which restic -p FILE trims; remove it", ErrPasswordRestic)
	}
	return nil
}

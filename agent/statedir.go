package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the lock in the state directory; it holds the PID of the agent
// that holds it.
const LockFile = "agent.lock"

// lockState creates the state directory (mode 0700: it holds caches of
// repository metadata) and takes its lock, so that two agents never share
// it. The lock is an flock (LockFileEx on Windows): the kernel drops it when
// the process dies, however it dies.
func lockState(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %s: %w (create it, or set state_dir to a writable directory)", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	if err := lockFileExclusive(f); err != nil {
		pid, _ := os.ReadFile(f.Name())
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, fmt.Errorf("another escrow agent (pid %s) is running with state directory %s; stop it first, or give this one its own state_dir", strings.TrimSpace(string(pid)), dir)
		}
		return nil, fmt.Errorf("lock state directory %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// Running reports whether an agent holds the state directory dir.
func Running(dir string) bool {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if err != nil {
		return false
	}
	defer f.Close()
	return lockedByOther(f)
}

// errLocked is what lockFileExclusive returns when another process holds
// the lock.
var errLocked = errors.New("locked by another process")

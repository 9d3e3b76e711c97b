package agent

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// The lock covers one byte at 4 GiB, beyond the PID written at the start of
// the file: Windows byte-range locks are mandatory, so a lock over the PID
// would keep other processes from reading it.
const lockOffsetHigh = 1

func lockRange(f *os.File, flags uint32) error {
	ol := windows.Overlapped{OffsetHigh: lockOffsetHigh}
	return windows.LockFileEx(windows.Handle(f.Fd()), flags|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
}

// lockFileExclusive takes f's lock without waiting. Windows releases it when
// the process ends, however it ends.
func lockFileExclusive(f *os.File) error {
	err := lockRange(f, windows.LOCKFILE_EXCLUSIVE_LOCK)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return errLocked
	}
	return err
}

// lockedByOther reports whether another process holds f's lock.
func lockedByOther(f *os.File) bool {
	if err := lockRange(f, 0); err != nil {
		return errors.Is(err, windows.ERROR_LOCK_VIOLATION)
	}
	ol := windows.Overlapped{OffsetHigh: lockOffsetHigh}
	_ = windows.UnlockFileEx(windows.Handle(f.Fd()), 0, 1, 0, &ol)
	return false
}

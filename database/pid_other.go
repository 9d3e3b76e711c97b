//go:build !unix

package database

import "os"

// processRuns reports whether a process with this PID exists: on Windows
// FindProcess opens the process and fails when there is none.
func processRuns(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}

//go:build unix

package config

import "golang.org/x/sys/unix"

// Access modes for access.
const (
	accessRead  = unix.R_OK
	accessWrite = unix.W_OK
	accessExec  = unix.X_OK
)

// access asks the kernel whether this process may use path in mode, which
// mode bits alone cannot answer (root, groups, ACLs, read-only mounts).
func access(path string, mode uint32) error {
	return unix.Access(path, mode)
}

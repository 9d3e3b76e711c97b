//go:build !unix

package config

const (
	accessRead  = 4
	accessWrite = 2
	accessExec  = 1
)

// access cannot be asked of the system here; opening the path later reports
// what it refuses.
func access(string, uint32) error { return nil }

//go:build unix

package watch

import (
	"io/fs"
	"syscall"
)

// deviceOf returns the device a file lives on, for one_file_system.
func deviceOf(fi fs.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true
}

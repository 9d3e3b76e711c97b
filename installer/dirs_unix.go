//go:build !windows

package installer

import (
	"fmt"
	"os"
	"syscall"
)

// restrict gives p mode perm, and root as its owner when installing as
// root. It says what it changed.
func restrict(p string, fi os.FileInfo, perm os.FileMode) ([]string, error) {
	var notes []string
	if fi.Mode().Perm() != perm {
		if err := os.Chmod(p, perm); err != nil {
			return notes, err
		}
		notes = append(notes, fmt.Sprintf("%s: mode %04o -> %04o", p, fi.Mode().Perm(), perm))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && (st.Uid != 0 || st.Gid != 0) {
		if err := os.Lchown(p, 0, 0); err != nil {
			return notes, err
		}
		notes = append(notes, fmt.Sprintf("%s: owner %d:%d -> root", p, st.Uid, st.Gid))
	}
	return notes, nil
}

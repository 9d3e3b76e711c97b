//go:build unix

package database

import (
	"os"
	"syscall"
)

// matchOwner gives a restored SQLite file the mode and owner of the file it
// replaces, or for a new file the owner of its folder, so that the
// application (which rarely runs as root) can still write its database.
func matchOwner(p string, old os.FileInfo, dir string) error {
	mode := os.FileMode(0o640)
	uid, gid := -1, -1
	like := old
	if old != nil {
		mode = old.Mode().Perm()
	} else {
		like, _ = os.Stat(dir)
	}
	if like != nil {
		if st, ok := like.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(st.Uid), int(st.Gid)
		}
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	if os.Geteuid() == 0 && uid >= 0 {
		return os.Chown(p, uid, gid)
	}
	return nil
}

//go:build !windows

package installer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// CheckExecutable refuses an executable that a user other than root could
// replace, since the service runs it as root: the file and every directory
// above it must belong to root and be writable by nobody else. It also
// refuses /tmp and /var/tmp, which the systemd unit's private /tmp hides.
func CheckExecutable(exe string) error {
	for _, tmp := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		if exe == tmp || strings.HasPrefix(exe, tmp+"/") {
			return fmt.Errorf("the service would run %s, in %s, which the service does not see; copy it first: install -m 0755 %s /usr/local/bin/escrow", exe, tmp, exe)
		}
	}
	for p := exe; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		uid := uint32(0)
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			uid = st.Uid
		}
		if uid != 0 || fi.Mode().Perm()&0o022 != 0 {
			return fmt.Errorf("the service would run %s as root, but %s can be changed by a user other than root (owner %d, mode %04o); copy the binary first: install -m 0755 %s /usr/local/bin/escrow", exe, p, uid, fi.Mode().Perm(), exe)
		}
		if p == "/" {
			return nil
		}
	}
}

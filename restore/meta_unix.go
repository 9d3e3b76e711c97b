//go:build unix

package restore

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escrow-backup/escrow/repo"
)

// applyMeta restores ownership (as root), mode and times. Ownership comes
// first because chown clears the set-user-ID bits.
func (rs *restorer) applyMeta(p string, n *repo.Node) error {
	if rs.owner {
		if err := os.Lchown(p, int(n.UID), int(n.GID)); err != nil {
			return fmt.Errorf("set owner: %w", err)
		}
	}
	if n.Type != repo.NodeSymlink {
		mode := n.Mode & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
		if err := os.Chmod(p, mode); err != nil {
			return fmt.Errorf("set mode: %w", err)
		}
	}
	atime := n.AccessTime
	if atime.IsZero() {
		atime = n.ModTime
	}
	ts := []unix.Timespec{toTimespec(atime), toTimespec(n.ModTime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func toTimespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		t = time.Now() // a node without times: like a newly written file
	}
	return unix.NsecToTimespec(t.UnixNano())
}

func (rs *restorer) makeSpecial(p string, n *repo.Node) error {
	_ = os.Remove(p)
	var mode uint32
	switch n.Type {
	case repo.NodeFIFO:
		mode = syscall.S_IFIFO
	case repo.NodeCharDev:
		mode = syscall.S_IFCHR
	case repo.NodeDev:
		mode = syscall.S_IFBLK
	case repo.NodeSocket:
		return nil // a socket is recreated by the program that listens on it
	default:
		return fmt.Errorf("unknown node type %q", n.Type)
	}
	if mode != syscall.S_IFIFO && !rs.owner {
		return errors.New("device files can only be restored as root")
	}
	if err := unix.Mknod(p, mode|uint32(n.Mode.Perm()), int(n.Device)); err != nil {
		return err
	}
	return rs.applyMeta(p, n)
}

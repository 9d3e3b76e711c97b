package restore

import (
	"errors"
	"fmt"
	"os"

	"github.com/escrow-backup/escrow/repo"
)

// applyMeta restores what Windows can hold of a node's metadata: the
// read-only attribute (from the write bits) and the modification time.
// Owners are not restored; symlinks keep the time of their creation.
func (rs *restorer) applyMeta(p string, n *repo.Node) error {
	if n.Type == repo.NodeSymlink {
		return nil
	}
	if err := os.Chmod(p, n.Mode.Perm()); err != nil {
		return fmt.Errorf("set mode: %w", err)
	}
	atime := n.AccessTime
	if atime.IsZero() {
		atime = n.ModTime
	}
	if err := os.Chtimes(p, atime, n.ModTime); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

func (rs *restorer) makeSpecial(p string, n *repo.Node) error {
	if n.Type == repo.NodeSocket {
		return nil // a socket is recreated by the program that listens on it
	}
	return errors.New("FIFOs and device files cannot be restored on Windows")
}

//go:build unix

package restore_test

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/escrow-backup/escrow/restore"
)

// Block counts come from stat(2), which only unix has.
func TestRestoreKeepsSparseFilesSparse(t *testing.T) {
	r, sn, src, _ := setup(t)
	target := t.TempDir()
	if _, err := restore.Run(context.Background(), r, sn, restore.Options{Target: target}); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(target, src, "sparse.img"), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 8<<20 {
		t.Fatalf("64 MiB sparse file takes %d bytes on disk", used)
	}
}

//go:build linux || darwin

package backup_test

import (
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/escrow-backup/escrow/backup"
)

// Scan's totals are what the backup of the same paths then processes,
// excludes included, and the byte progress the backup reports ends at that
// total, moving within a large file rather than jumping at its end.
func TestScanTotalsMatchBackup(t *testing.T) {
	src := t.TempDir()
	rnd := rand.New(rand.NewSource(3))
	write := func(rel string, size int) {
		p := filepath.Join(src, rel)
		mustDo(t, os.MkdirAll(filepath.Dir(p), 0o755))
		data := make([]byte, size)
		rnd.Read(data)
		mustDo(t, os.WriteFile(p, data, 0o644))
	}
	write("big.bin", 12<<20)
	for i, name := range []string{"a/1.php", "a/b/2.php", "c/3.css", "cache/skip.tmp", "empty"} {
		write(name, i*1000)
	}
	mustDo(t, os.Symlink("a/1.php", filepath.Join(src, "link")))
	excludes := []string{"cache"}

	var reports int
	tot, err := backup.Scan(context.Background(), backup.Options{Paths: []string{src, filepath.Join(src, "a")}, Excludes: excludes},
		func(backup.ScanTotals) { reports++ })
	mustDo(t, err)
	if tot.Files != 5 || reports == 0 {
		t.Errorf("scan counted %d files (want 5: the excluded one and the symlink left out, a/ once) with %d reports", tot.Files, reports)
	}

	var mu sync.Mutex
	var last backup.Progress
	calls := 0
	repoDir := newTestRepo(t)
	res := backupWith(t, repoDir, src, func(o *backup.Options) {
		o.Excludes = excludes
		o.Progress = func(p backup.Progress) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if p.Bytes > last.Bytes {
				last.Bytes = p.Bytes
			}
			last.Files = max(last.Files, p.Files)
		}
	})
	s := res.Summary
	if s.TotalFilesProcessed != tot.Files || s.TotalBytesProcessed != tot.Bytes {
		t.Errorf("backup processed %d files, %d bytes; the scan counted %d, %d", s.TotalFilesProcessed, s.TotalBytesProcessed, tot.Files, tot.Bytes)
	}
	if last.Files != tot.Files || last.Bytes != tot.Bytes {
		t.Errorf("progress ended at %d files, %d bytes; want the scan's %d, %d", last.Files, last.Bytes, tot.Files, tot.Bytes)
	}
	// One call per file, and more for the chunks of the 12 MiB file.
	if calls < int(tot.Files)+4 {
		t.Errorf("%d progress calls for %d files: none while the large file was read", calls, tot.Files)
	}

	// The next backup reads nothing but still counts every byte as done.
	last = backup.Progress{}
	res = backupWith(t, repoDir, src, func(o *backup.Options) {
		o.Excludes = excludes
		o.Progress = func(p backup.Progress) {
			mu.Lock()
			defer mu.Unlock()
			last.Bytes = max(last.Bytes, p.Bytes)
		}
	})
	if res.Summary.FilesUnmodified != tot.Files || last.Bytes != tot.Bytes {
		t.Errorf("unchanged backup: %d files unmodified, progress ended at %d bytes; want %d, %d", res.Summary.FilesUnmodified, last.Bytes, tot.Files, tot.Bytes)
	}
}

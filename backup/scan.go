package backup

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ScanTotals is what a backup of some paths will go through.
type ScanTotals struct {
	Files, Dirs, Bytes uint64
}

// Scan counts the regular files below opts.Paths, and their bytes, as Files
// would walk them (same excludes, same file system rule), so that a progress
// display can show a total and an ETA. It only lists directories and reads
// file attributes, which is far faster than reading contents, so it runs
// alongside the backup, as restic's scanner does. report, when set, gets the
// totals so far after each directory. Entries it cannot read are left out:
// the backup reports them.
func Scan(ctx context.Context, opts Options, report func(ScanTotals)) (ScanTotals, error) {
	var t ScanTotals
	ex, err := NewExcluder(opts.Excludes)
	if err != nil {
		return t, err
	}
	var paths []string
	for _, p := range opts.Paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return t, err
		}
		paths = append(paths, abs)
	}
	sort.Strings(paths)
	s := &scanner{ex: ex, oneFS: opts.OneFileSystem, report: report}
	for i, p := range paths {
		// A path below another one given is backed up with it (see
		// archiver.run): count it once.
		if i > 0 && within(paths[:i], p) {
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		dev, _ := deviceOf(fi)
		if err := s.entry(ctx, p, fi, dev, &t); err != nil {
			return t, err
		}
	}
	if report != nil {
		report(t)
	}
	return t, nil
}

func within(parents []string, p string) bool {
	for _, q := range parents {
		if p == q || strings.HasPrefix(p, strings.TrimSuffix(q, string(filepath.Separator))+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

type scanner struct {
	ex     *Excluder
	oneFS  bool
	report func(ScanTotals)
}

func (s *scanner) entry(ctx context.Context, path string, fi os.FileInfo, rootDev uint64, t *ScanTotals) error {
	switch {
	case fi.Mode().IsRegular():
		t.Files++
		t.Bytes += uint64(fi.Size())
		return nil
	case !fi.IsDir():
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t.Dirs++
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil
	}
	sort.Strings(names)
	var dirs []string
	var infos []os.FileInfo
	for _, name := range names {
		p := filepath.Join(path, name)
		if s.ex.Excluded(p) {
			continue
		}
		cfi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if cfi.IsDir() {
			if s.oneFS {
				if dev, ok := deviceOf(cfi); ok && dev != rootDev {
					continue
				}
			}
			dirs, infos = append(dirs, p), append(infos, cfi)
			continue
		}
		_ = s.entry(ctx, p, cfi, rootDev, t)
	}
	if s.report != nil {
		s.report(*t)
	}
	for i, d := range dirs {
		if err := s.entry(ctx, d, infos[i], rootDev, t); err != nil {
			return err
		}
	}
	return nil
}

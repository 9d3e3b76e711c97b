package installer

import (
	"fmt"
	"os"
	"path/filepath"
)

// prepareDirs creates the configuration and state directories below
// o.Root if missing, and makes them and the files directly in the
// configuration directory usable by root only. It never writes a file's
// content. It returns a line for each change it made to something that
// already existed.
func prepareDirs(o Options) ([]string, error) {
	var notes []string
	dirs := []string{ConfigDir, StateDir}
	if filepath.Clean(o.StateDir) != StateDir {
		dirs = append(dirs, filepath.Clean(o.StateDir))
	}
	for _, d := range dirs {
		n, err := privateDir(o.path(d))
		if err != nil {
			return notes, err
		}
		notes = append(notes, n...)
	}
	entries, err := os.ReadDir(o.path(ConfigDir))
	if err != nil {
		return notes, err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		n, err := privateFile(filepath.Join(o.path(ConfigDir), e.Name()))
		if err != nil {
			return notes, err
		}
		notes = append(notes, n...)
	}
	return notes, nil
}

// privateDir creates dir (mode 0700) or restricts an existing one.
func privateDir(dir string) ([]string, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	err := os.Mkdir(dir, 0o700)
	if err != nil && !os.IsExist(err) {
		return nil, err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	return restrict(dir, fi, 0o700)
}

// privateFile restricts an existing file to mode 0600 or tighter.
func privateFile(p string) ([]string, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	return restrict(p, fi, fi.Mode().Perm()&0o700)
}

// writeFileAtomic replaces path with data: readers see the old file or the
// new one, never a part.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

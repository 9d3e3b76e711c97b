//go:build !unix

package database

import "os"

// matchOwner gives a restored SQLite file the mode of the file it replaces.
func matchOwner(p string, old os.FileInfo, _ string) error {
	if old == nil {
		return nil
	}
	return os.Chmod(p, old.Mode().Perm())
}

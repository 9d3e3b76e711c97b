package backup

import (
	"os"
	"syscall"
)

// openNoAtime opens a file for reading without updating its access time
// where the kernel allows it (owner or CAP_FOWNER), so a backup does not
// touch every file's atime on a live site.
func openNoAtime(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOATIME, 0)
	if err == nil {
		return f, nil
	}
	return os.Open(path)
}

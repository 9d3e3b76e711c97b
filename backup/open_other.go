//go:build !linux

package backup

import "os"

func openNoAtime(path string) (*os.File, error) { return os.Open(path) }

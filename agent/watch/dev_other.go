//go:build !unix

package watch

import "io/fs"

// deviceOf cannot tell volumes apart from os.FileInfo here, so
// one_file_system does not stop at other volumes.
func deviceOf(fs.FileInfo) (uint64, bool) { return 0, false }

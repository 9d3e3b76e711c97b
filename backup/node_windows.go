package backup

import (
	"io/fs"

	"github.com/escrow-backup/escrow/repo"
)

// nodeFromInfo fills a node from what os.Lstat gives on Windows: type,
// permission bits (Go maps the read-only attribute to 0444), size and
// modification time. Owners, inode, device and link counts are not
// recorded: Windows has no uid/gid, and its security descriptors and
// alternate data streams are not backed up (docs/service.md says so).
func (a *archiver) nodeFromInfo(name string, fi fs.FileInfo) *repo.Node {
	n := &repo.Node{Name: name, Mode: fi.Mode(), ModTime: fi.ModTime(), AccessTime: fi.ModTime(), ChangeTime: fi.ModTime()}
	switch {
	case fi.Mode().IsRegular():
		n.Type = repo.NodeFile
		n.Size = uint64(fi.Size())
	case fi.IsDir():
		n.Type = repo.NodeDir
	case fi.Mode()&fs.ModeSymlink != 0:
		n.Type = repo.NodeSymlink
	case fi.Mode()&fs.ModeNamedPipe != 0:
		n.Type = repo.NodeFIFO
	case fi.Mode()&fs.ModeSocket != 0:
		n.Type = repo.NodeSocket
	case fi.Mode()&fs.ModeCharDevice != 0:
		n.Type = repo.NodeCharDev
	case fi.Mode()&fs.ModeDevice != 0:
		n.Type = repo.NodeDev
	}
	return n
}

// deviceOf cannot tell volumes apart from os.FileInfo on Windows, so
// one_file_system does not stop at other volumes there.
func deviceOf(fs.FileInfo) (uint64, bool) { return 0, false }

// nameCache has nothing to cache on Windows: nodes carry no owner.
type nameCache struct{}

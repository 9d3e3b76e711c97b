//go:build unix

package backup

import (
	"io/fs"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/escrow-backup/escrow/repo"
)

// nodeFromInfo fills a node's metadata from lstat.
func (a *archiver) nodeFromInfo(name string, fi fs.FileInfo) *repo.Node {
	n := &repo.Node{Name: name, Mode: fi.Mode(), ModTime: fi.ModTime()}
	switch {
	case fi.Mode().IsRegular():
		n.Type = repo.NodeFile
		n.Size = uint64(fi.Size())
	case fi.IsDir():
		n.Type = repo.NodeDir
	case fi.Mode()&fs.ModeSymlink != 0:
		n.Type = repo.NodeSymlink
	case fi.Mode()&fs.ModeCharDevice != 0:
		n.Type = repo.NodeCharDev
	case fi.Mode()&fs.ModeDevice != 0:
		n.Type = repo.NodeDev
	case fi.Mode()&fs.ModeNamedPipe != 0:
		n.Type = repo.NodeFIFO
	case fi.Mode()&fs.ModeSocket != 0:
		n.Type = repo.NodeSocket
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return n
	}
	n.UID, n.GID = st.Uid, st.Gid
	n.User = a.names.user(st.Uid)
	n.Group = a.names.group(st.Gid)
	n.Inode = uint64(st.Ino)
	n.DeviceID = uint64(st.Dev)
	n.Links = uint64(st.Nlink)
	// The access time is not recorded (it is set to mtime, as restic does):
	// reading a directory during a backup moves its atime, so recording it
	// would give every directory a new tree on every run and defeat the
	// reuse of unchanged subtrees.
	n.AccessTime = n.ModTime
	n.ChangeTime = timespec(statCtime(st))
	if n.Type == repo.NodeDev || n.Type == repo.NodeCharDev {
		n.Device = uint64(st.Rdev)
	}
	return n
}

// The conversions matter on 32-bit systems, where the fields are int32.
func timespec(ts syscall.Timespec) time.Time { return time.Unix(int64(ts.Sec), int64(ts.Nsec)) }

func deviceOf(fi fs.FileInfo) (uint64, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true
}

// nameCache remembers user and group names; looking them up per file is
// slow (it may read /etc/passwd or ask NSS every time).
type nameCache struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
}

func (c *nameCache) user(uid uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.users[uid]; ok {
		return n
	}
	name := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		name = u.Username
	}
	if c.users == nil {
		c.users = map[uint32]string{}
	}
	c.users[uid] = name
	return name
}

func (c *nameCache) group(gid uint32) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.groups[gid]; ok {
		return n
	}
	name := ""
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		name = g.Name
	}
	if c.groups == nil {
		c.groups = map[uint32]string{}
	}
	c.groups[gid] = name
	return name
}

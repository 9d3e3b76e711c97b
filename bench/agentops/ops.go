package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ops makes changes below root that a file watcher must all report: files
// created, rewritten, appended, deleted, renamed (also over another file),
// chmodded and touched; symlinks; deep new trees; directories moved within
// the tree, moved in from outside it (so no event announced their content),
// moved out, deleted, and deleted then made again under the same name.
//
// Every choice comes from the seeded generator and from the tree as it is
// (directories are listed sorted), so the same seed on the same tree makes
// the same operations. Directories that are moved or deleted are chosen
// among those with at most maxMoved entries below them, as on a live site:
// a plugin folder, not the whole wp-content.
type ops struct {
	root, outside string
	r             *rand.Rand
	// dirs are directories that existed when added; entries that are gone
	// or moved are dropped when drawn.
	dirs   []string
	seq    int
	counts map[string]int
}

const maxMoved = 300

type op struct {
	name   string
	weight int
	do     func(*ops) error
}

var opTable = []op{
	{"create", 20, (*ops).create},
	{"modify", 20, (*ops).modify},
	{"delete", 10, (*ops).deleteFile},
	{"rename", 12, (*ops).rename},
	{"chmod", 4, (*ops).chmod},
	{"touch", 3, (*ops).touch},
	{"symlink", 2, (*ops).symlink},
	{"deep_tree", 5, (*ops).deepTree},
	{"move_dir", 7, (*ops).moveDir},
	{"move_in", 5, (*ops).moveIn},
	{"move_out", 2, (*ops).moveOut},
	{"delete_dir", 3, (*ops).deleteDir},
	{"recreate_dir", 5, (*ops).recreateDir},
}

func newOps(root, outside string, seed uint64) (*ops, error) {
	o := &ops{root: filepath.Clean(root), outside: filepath.Clean(outside), r: rand.New(rand.NewPCG(seed, 0xA6E47)), counts: map[string]int{}}
	if err := os.MkdirAll(o.outside, 0o755); err != nil {
		return nil, err
	}
	err := filepath.WalkDir(o.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != o.root {
			o.dirs = append(o.dirs, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(o.dirs) == 0 {
		return nil, fmt.Errorf("%s has no directories to work in", o.root)
	}
	return o, nil
}

func (o *ops) run(n int, spread time.Duration) error {
	total := 0
	for _, t := range opTable {
		total += t.weight
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if spread > 0 {
			if d := time.Until(start.Add(spread * time.Duration(i) / time.Duration(n))); d > 5*time.Millisecond {
				time.Sleep(d)
			}
		}
		k := o.r.IntN(total)
		var t op
		for _, t = range opTable {
			if k < t.weight {
				break
			}
			k -= t.weight
		}
		o.seq++
		if err := t.do(o); err != nil {
			return fmt.Errorf("operation %d (%s): %w", i+1, t.name, err)
		}
		o.counts[t.name]++
	}
	end := time.Now()
	names := make([]string, 0, len(o.counts))
	for k := range o.counts {
		names = append(names, k)
	}
	sort.Strings(names)
	fmt.Printf("ops=%d", n)
	for _, k := range names {
		fmt.Printf(" %s=%d", k, o.counts[k])
	}
	fmt.Printf("\nfirst_op_ns=%d\nlast_op_ns=%d\n", start.UnixNano(), end.UnixNano())
	return nil
}

// ------------------------------------------------------------- choosing

// dir draws a directory that still exists.
func (o *ops) dir() string {
	for len(o.dirs) > 0 {
		i := o.r.IntN(len(o.dirs))
		d := o.dirs[i]
		if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
			return d
		}
		o.dirs[i] = o.dirs[len(o.dirs)-1]
		o.dirs = o.dirs[:len(o.dirs)-1]
	}
	return o.root
}

// file draws an existing regular file, or returns "" after a few tries.
func (o *ops) file() string {
	for try := 0; try < 20; try++ {
		d := o.dir()
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		var files []string
		for _, e := range ents {
			if e.Type().IsRegular() {
				files = append(files, e.Name())
			}
		}
		if len(files) > 0 {
			return filepath.Join(d, files[o.r.IntN(len(files))])
		}
	}
	return ""
}

// smallDir draws a directory below root with at most maxMoved entries.
func (o *ops) smallDir() string {
	for try := 0; try < 50; try++ {
		d := o.dir()
		if d != o.root && entriesBelow(d, maxMoved+1) <= maxMoved {
			return d
		}
	}
	return ""
}

var errEnough = errors.New("enough")

func entriesBelow(dir string, limit int) int {
	n := 0
	_ = filepath.WalkDir(dir, func(string, fs.DirEntry, error) error {
		n++
		if n >= limit {
			return errEnough
		}
		return nil
	})
	return n
}

// addTree records the directories at and below dir.
func (o *ops) addTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			o.dirs = append(o.dirs, p)
		}
		return nil
	})
}

func (o *ops) name(prefix string) string { return fmt.Sprintf("%s%d", prefix, o.seq) }

// content is size bytes of text lines.
func (o *ops) content(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		if i%64 == 63 {
			b[i] = '\n'
		} else {
			b[i] = 'a' + byte(o.r.IntN(26))
		}
	}
	return b
}

func (o *ops) write(p string, lo, hi int) error {
	return os.WriteFile(p, o.content(lo+o.r.IntN(hi-lo+1)), 0o644)
}

// fillTree writes a new tree at dir: depth levels, 1 to files files each.
func (o *ops) fillTree(dir string, depth, files int) error {
	for d := 0; d < depth; d++ {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		for k := 0; k < 1+o.r.IntN(files); k++ {
			if err := o.write(filepath.Join(dir, fmt.Sprintf("f%d.php", k)), 0, 8000); err != nil {
				return err
			}
		}
		dir = filepath.Join(dir, fmt.Sprintf("d%d", d))
	}
	return nil
}

// ----------------------------------------------------------- operations

func (o *ops) create() error {
	exts := []string{"php", "js", "css", "html", "json", "txt"}
	return o.write(filepath.Join(o.dir(), o.name("new-")+"."+exts[o.r.IntN(len(exts))]), 0, 20000)
}

func (o *ops) modify() error {
	p := o.file()
	if p == "" {
		return o.create()
	}
	switch o.r.IntN(4) {
	case 0: // rewritten whole
		return o.write(p, 0, 20000)
	case 1: // appended to
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		_, err = f.Write(o.content(1 + o.r.IntN(500)))
		return errors.Join(err, f.Close())
	case 2: // a few bytes changed in place: same size, new mtime
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err == nil && fi.Size() > 0 {
			_, err = f.WriteAt(o.content(min(16, int(fi.Size()))), o.r.Int64N(fi.Size()))
		}
		return errors.Join(err, f.Close())
	default: // truncated
		return os.Truncate(p, o.r.Int64N(100))
	}
}

func (o *ops) deleteFile() error {
	if p := o.file(); p != "" {
		return os.Remove(p)
	}
	return nil
}

func (o *ops) rename() error {
	p := o.file()
	if p == "" {
		return nil
	}
	var to string
	switch o.r.IntN(10) {
	case 0, 1, 2, 3: // in its directory
		to = filepath.Join(filepath.Dir(p), o.name("ren-")+filepath.Ext(p))
	case 4: // over another file
		if to = o.file(); to == "" || to == p {
			return nil
		}
	default: // to another directory
		to = filepath.Join(o.dir(), o.name("mv-")+filepath.Ext(p))
	}
	return os.Rename(p, to)
}

func (o *ops) chmod() error {
	p := o.file()
	if p == "" {
		return nil
	}
	modes := []os.FileMode{0o600, 0o640, 0o644, 0o664}
	return os.Chmod(p, modes[o.r.IntN(len(modes))])
}

func (o *ops) touch() error {
	p := o.file()
	if p == "" {
		return nil
	}
	t := time.Date(2020+o.r.IntN(5), time.Month(1+o.r.IntN(12)), 1+o.r.IntN(28), o.r.IntN(24), 0, 0, 0, time.UTC)
	return os.Chtimes(p, t, t)
}

func (o *ops) symlink() error {
	p := o.file()
	if p == "" {
		return nil
	}
	d := o.dir()
	target, err := filepath.Rel(d, p)
	if err != nil {
		return err
	}
	return os.Symlink(target, filepath.Join(d, o.name("ln-")))
}

func (o *ops) deepTree() error {
	top := filepath.Join(o.dir(), o.name("deep-"))
	if err := o.fillTree(top, 4+o.r.IntN(7), 3); err != nil {
		return err
	}
	o.addTree(top)
	return nil
}

func (o *ops) moveDir() error {
	src := o.smallDir()
	if src == "" {
		return nil
	}
	dst := o.dir()
	if dst == src || strings.HasPrefix(dst, src+"/") {
		return nil // not into itself
	}
	to := filepath.Join(dst, o.name("moved-"))
	if err := os.Rename(src, to); err != nil {
		return err
	}
	o.addTree(to)
	return nil
}

func (o *ops) moveIn() error {
	tmp := filepath.Join(o.outside, o.name("in-"))
	if err := o.fillTree(tmp, 1+o.r.IntN(4), 6); err != nil {
		return err
	}
	to := filepath.Join(o.dir(), filepath.Base(tmp))
	if err := os.Rename(tmp, to); err != nil {
		return fmt.Errorf("move in (the outside directory must be on the tree's file system): %w", err)
	}
	o.addTree(to)
	return nil
}

func (o *ops) moveOut() error {
	src := o.smallDir()
	if src == "" {
		return nil
	}
	return os.Rename(src, filepath.Join(o.outside, o.name("out-")))
}

func (o *ops) deleteDir() error {
	if src := o.smallDir(); src != "" {
		return os.RemoveAll(src)
	}
	return nil
}

// recreateDir deletes a directory and makes a new one under the same name
// at once, as a deploy script does: new content, perhaps a subdirectory.
func (o *ops) recreateDir() error {
	src := o.smallDir()
	if src == "" {
		return nil
	}
	if err := os.RemoveAll(src); err != nil {
		return err
	}
	if err := o.fillTree(src, 1+o.r.IntN(3), 5); err != nil {
		return err
	}
	o.addTree(src)
	return nil
}

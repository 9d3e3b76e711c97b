package watch

import (
	"path/filepath"
	"time"
)

// Set is what changed below one root since it was last taken: directories
// whose entries changed, and directories whose whole content is unknown
// (created or moved in, or seen only partly). It answers the questions a
// backup asks while it walks (backup.Changes) and a rescan asks when it
// finds a difference.
type Set struct {
	root  string
	dirs  map[string]struct{} // entries of these directories changed
	trees map[string]struct{} // everything at or below these is unknown
	above map[string]struct{} // ancestors of dirs and trees, down from root
	// All means everything below root is unknown: an overflow, a watcher
	// error, or a root that is not fully watched.
	All bool
	// First and Last are when the first and the latest change arrived.
	First, Last time.Time
	// Events counts the changes recorded.
	Events int
}

// NewSet returns an empty set for the directory root.
func NewSet(root string) *Set {
	return &Set{root: filepath.Clean(root), dirs: map[string]struct{}{}, trees: map[string]struct{}{}, above: map[string]struct{}{}}
}

// Empty reports whether nothing changed.
func (s *Set) Empty() bool { return !s.All && len(s.dirs) == 0 && len(s.trees) == 0 }

// Dirs is the number of directories recorded.
func (s *Set) Dirs() int { return len(s.dirs) + len(s.trees) }

// Dir records that the entries of directory dir changed.
func (s *Set) Dir(dir string, at time.Time) {
	s.add(s.dirs, filepath.Clean(dir), at)
}

// Tree records that everything at or below dir may have changed.
func (s *Set) Tree(dir string, at time.Time) {
	s.add(s.trees, filepath.Clean(dir), at)
}

// Everything records that anything below the root may have changed.
func (s *Set) Everything(at time.Time) {
	s.All = true
	s.note(at)
}

func (s *Set) add(m map[string]struct{}, dir string, at time.Time) {
	if !s.within(dir) {
		return
	}
	m[dir] = struct{}{}
	for p := dir; p != s.root; {
		p = filepath.Dir(p)
		if _, ok := s.above[p]; ok {
			break // its ancestors are recorded too
		}
		s.above[p] = struct{}{}
	}
	s.note(at)
}

func (s *Set) note(at time.Time) {
	if s.First.IsZero() || at.Before(s.First) {
		s.First = at
	}
	if at.After(s.Last) {
		s.Last = at
	}
	s.Events++
}

func (s *Set) within(p string) bool {
	return p == s.root || len(p) > len(s.root) && p[:len(s.root)] == s.root && (s.root == "/" || p[len(s.root)] == '/')
}

// Touched reports whether anything at or below dir may have changed; a
// backup reads the directories it reports and takes the others from the
// parent snapshot.
func (s *Set) Touched(dir string) bool {
	if s.All {
		return true
	}
	dir = filepath.Clean(dir)
	if _, ok := s.dirs[dir]; ok {
		return true
	}
	if _, ok := s.above[dir]; ok {
		return true
	}
	return s.inTree(dir)
}

// Covers reports whether a change found at path was recorded: its
// directory's entries changed, or it lies in an unknown tree.
func (s *Set) Covers(path string) bool {
	if s.All {
		return true
	}
	path = filepath.Clean(path)
	if _, ok := s.dirs[filepath.Dir(path)]; ok {
		return true
	}
	return s.inTree(path)
}

func (s *Set) inTree(p string) bool {
	for {
		if _, ok := s.trees[p]; ok {
			return true
		}
		if p == s.root || !s.within(p) {
			return false
		}
		p = filepath.Dir(p)
	}
}

// Merge adds everything recorded in o.
func (s *Set) Merge(o *Set) {
	if o == nil || o.Events == 0 {
		return
	}
	for d := range o.dirs {
		s.add(s.dirs, d, o.First)
	}
	for d := range o.trees {
		s.add(s.trees, d, o.First)
	}
	if o.All {
		s.All = true
	}
	s.note(o.First)
	s.note(o.Last)
}

package watch

import (
	"testing"
	"time"
)

func TestSetTouchedAndCovers(t *testing.T) {
	at := time.Unix(1000, 0)
	s := NewSet("/site")
	if !s.Empty() || s.Touched("/site") {
		t.Fatal("a new set should be empty")
	}
	s.Dir("/site/a/b", at)
	s.Tree("/site/new", at.Add(time.Second))
	s.Dir("/elsewhere/x", at) // outside the root: ignored

	touched := map[string]bool{
		"/site": true, "/site/a": true, "/site/a/b": true, // the dir and its ancestors
		"/site/a/b/c": false,                           // below a changed dir: its own entries did not change
		"/site/new":   true, "/site/new/deep/er": true, // an unknown tree, all of it
		"/site/other": false, "/site/newer": false, "/elsewhere": false, "/elsewhere/x": false,
	}
	for dir, want := range touched {
		if got := s.Touched(dir); got != want {
			t.Errorf("Touched(%s) = %v, want %v", dir, got, want)
		}
	}
	covers := map[string]bool{
		"/site/a/b/file": true, "/site/a/b/c": true, // entries of a changed dir
		"/site/a/b/c/file": false, "/site/a/file": false,
		"/site/new": true, "/site/new/x/y": true,
		"/site/newer/x": false,
	}
	for p, want := range covers {
		if got := s.Covers(p); got != want {
			t.Errorf("Covers(%s) = %v, want %v", p, got, want)
		}
	}
	if !s.First.Equal(at) || !s.Last.Equal(at.Add(time.Second)) {
		t.Errorf("times = %v, %v", s.First, s.Last)
	}

	all := NewSet("/site")
	all.Everything(at)
	if !all.Touched("/site/anything") || !all.Covers("/site/x/y") || all.Empty() {
		t.Error("Everything should touch and cover every path")
	}

	m := NewSet("/site")
	m.Merge(s)
	if !m.Touched("/site/a") || !m.Covers("/site/new/z") || !m.First.Equal(at) {
		t.Error("Merge lost changes")
	}
	m.Merge(all)
	if !m.All {
		t.Error("Merge lost Everything")
	}
}

func TestSetRootIsSlash(t *testing.T) {
	s := NewSet("/")
	s.Dir("/var/www", time.Unix(1, 0))
	if !s.Touched("/") || !s.Touched("/var") || s.Touched("/etc") || !s.Covers("/var/www/x") {
		t.Error("a set rooted at / should work like any other")
	}
}

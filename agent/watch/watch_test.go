package watch

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newWatcher(t *testing.T) *Watcher {
	t.Helper()
	w, err := New(slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	go w.Run()
	t.Cleanup(func() { w.Close() })
	return w
}

// waitCovered waits until r's pending set covers every path.
func waitCovered(t *testing.T, w *Watcher, r *Root, paths ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, p := range paths {
		for !w.Peek(r, p) {
			if time.Now().After(deadline) {
				t.Fatalf("no change recorded for %s", p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func mkdirs(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatcherFollowsNewAndMovedDirectories(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "site")
	mkdirs(t, filepath.Join(root, "a/b"), filepath.Join(root, "cache"), filepath.Join(base, "out/x/y"))
	w := newWatcher(t)
	r, err := w.Add(root, func(p string) bool { return strings.HasSuffix(p, "/cache") }, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := w.Watches(r); n != 3 { // site, a, a/b; cache is excluded
		t.Fatalf("watches = %d, want 3", n)
	}

	// A file deep down.
	if err := os.WriteFile(filepath.Join(root, "a/b/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitCovered(t, w, r, filepath.Join(root, "a/b/f"))

	// A tree moved in: unknown as a whole, and watched from now on.
	if err := os.Rename(filepath.Join(base, "out"), filepath.Join(root, "in")); err != nil {
		t.Fatal(err)
	}
	waitCovered(t, w, r, filepath.Join(root, "in/x/y/anything"))
	w.Take(r)
	if err := os.WriteFile(filepath.Join(root, "in/x/y/g"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitCovered(t, w, r, filepath.Join(root, "in/x/y/g"))
	if s := w.Take(r); s.Touched(filepath.Join(root, "a")) {
		t.Error("a change below in/ touched a/")
	}

	// Excluded directories raise nothing.
	if err := os.WriteFile(filepath.Join(root, "cache/c"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A tree moved within the root, then written to at its new place.
	if err := os.Rename(filepath.Join(root, "in"), filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	waitCovered(t, w, r, filepath.Join(root, "moved/x/y/z"))
	w.Take(r)
	if err := os.WriteFile(filepath.Join(root, "moved/x/y/h"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitCovered(t, w, r, filepath.Join(root, "moved/x/y/h"))
	s := w.Take(r)
	if s.Touched(filepath.Join(root, "cache")) {
		t.Error("a write in an excluded directory was recorded")
	}
	if s.Touched(filepath.Join(root, "in")) {
		t.Error("a write at the new place was reported under the old name")
	}
	if n := w.Watches(r); n != 6 { // site, a, a/b, moved, moved/x, moved/x/y
		t.Errorf("watches after the moves = %d, want 6", n)
	}

	// Moved out: no longer watched.
	if err := os.Rename(filepath.Join(root, "moved"), filepath.Join(base, "gone")); err != nil {
		t.Fatal(err)
	}
	waitCovered(t, w, r, filepath.Join(root, "moved"))
	deadline := time.Now().Add(5 * time.Second)
	for w.Watches(r) != 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := w.Watches(r); n != 3 {
		t.Errorf("watches after moving a tree out = %d, want 3", n)
	}
}

func TestWatcherAtTheWatchLimit(t *testing.T) {
	root := filepath.Join(t.TempDir(), "site")
	mkdirs(t, filepath.Join(root, "a/b/c"), filepath.Join(root, "d/e"))
	w := newWatcher(t)
	placed := 0
	place := w.add
	w.add = func(p string) error {
		if placed == 3 {
			return syscall.ENOSPC // what inotify_add_watch says at fs.inotify.max_user_watches
		}
		placed++
		return place(p)
	}
	r, err := w.Add(root, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	err = w.Limited(r)
	if !errors.Is(err, ErrLimit) {
		t.Fatalf("Limited = %v, want ErrLimit", err)
	}
	for _, want := range []string{"fs.inotify.max_user_watches", "sysctl", root, "scheduled rescans"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("limit message %q does not name %q", err, want)
		}
	}
	// Every set of a partly watched root covers everything.
	if s := w.Take(r); !s.All {
		t.Error("first set of a limited root is not a full one")
	}
	if s := w.Take(r); !s.All || !s.Covers(filepath.Join(root, "d/e/unwatched")) {
		t.Error("later sets of a limited root are not full ones")
	}
}

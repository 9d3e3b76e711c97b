//go:build linux || darwin

package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

// touchedDirs is a Changes that names directories.
type touchedDirs []string

func (t touchedDirs) Touched(dir string) bool {
	for _, d := range t {
		if d == dir || strings.HasPrefix(d, dir+"/") {
			return true
		}
	}
	return false
}

func newTestRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(context.Background(), dir)
	mustDo(t, err)
	r, err := repo.Init(context.Background(), be, interopPassword, repo.Options{KDF: fastKDF})
	mustDo(t, err)
	r.Close()
	return dir
}

// backupWith backs up src against the latest snapshot with extra options.
func backupWith(t *testing.T, repoDir, src string, set func(*backup.Options)) *backup.Result {
	t.Helper()
	ctx := context.Background()
	r := openRepo(t, repoDir)
	defer r.Close()
	snaps, err := r.Snapshots(ctx)
	mustDo(t, err)
	mustDo(t, r.LoadIndex(ctx))
	opts := backup.Options{Paths: []string{src}, Host: interopHost, Parent: backup.FindParent(snaps, interopHost, []string{src})}
	set(&opts)
	res, err := backup.Files(ctx, r, opts)
	if err != nil {
		t.Fatalf("backup %s: %v", src, err)
	}
	return res
}

// readFile returns a file's content from a snapshot.
func readFile(t *testing.T, repoDir string, sn *repo.Snapshot, path string) string {
	t.Helper()
	ctx := context.Background()
	r := openRepo(t, repoDir)
	defer r.Close()
	mustDo(t, r.LoadIndex(ctx))
	n, err := r.FindNode(ctx, sn, path)
	if err != nil {
		t.Fatalf("%s in snapshot: %v", path, err)
	}
	var b strings.Builder
	for _, id := range n.Content {
		data, err := r.LoadBlob(ctx, repo.BlobHandle{ID: id, Type: repo.DataBlob}, nil)
		mustDo(t, err)
		b.Write(data)
	}
	return b.String()
}

func TestChangesReuseUntouchedSubtrees(t *testing.T) {
	repoDir := newTestRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, src, "a/x.txt", []byte("x1"), 0o644)
	write(t, src, "b/y.txt", []byte("y1"), 0o644)
	write(t, src, "b/deep/z.txt", []byte("z1"), 0o644)
	backupWith(t, repoDir, src, func(*backup.Options) {})

	write(t, src, "a/x.txt", []byte("x2"), 0o644)
	write(t, src, "b/y.txt", []byte("y2"), 0o644)
	res := backupWith(t, repoDir, src, func(o *backup.Options) {
		o.Changes = touchedDirs{filepath.Join(src, "a")}
	})
	if got := readFile(t, repoDir, res.Snapshot, filepath.Join(src, "a/x.txt")); got != "x2" {
		t.Errorf("touched directory: a/x.txt = %q, want x2", got)
	}
	// b was not reported touched, so its parent subtree stands: proof that
	// it was not read.
	if got := readFile(t, repoDir, res.Snapshot, filepath.Join(src, "b/y.txt")); got != "y1" {
		t.Errorf("untouched directory: b/y.txt = %q, want the parent's y1", got)
	}
	if res.Summary.TotalFilesProcessed != 1 {
		t.Errorf("files examined = %d, want 1 (only a/x.txt)", res.Summary.TotalFilesProcessed)
	}

	// A full walk finds what the change list left out, and says so.
	var mu sync.Mutex
	var changes []string
	full := backupWith(t, repoDir, src, func(o *backup.Options) {
		o.OnChange = func(c backup.Change) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, c.Kind.String()+" "+strings.TrimPrefix(c.Path, src))
		}
	})
	if got := readFile(t, repoDir, full.Snapshot, filepath.Join(src, "b/y.txt")); got != "y2" {
		t.Errorf("full walk: b/y.txt = %q, want y2", got)
	}
	if want := []string{"modified /b/y.txt"}; strings.Join(changes, ",") != strings.Join(want, ",") {
		t.Errorf("changes = %q, want %q", changes, want)
	}
}

func TestOnChangeReportsAddedModifiedRemoved(t *testing.T) {
	repoDir := newTestRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, src, "keep.txt", []byte("same"), 0o644)
	write(t, src, "edit.txt", []byte("before"), 0o644)
	write(t, src, "gone.txt", []byte("bye"), 0o644)
	write(t, src, "old/inner.txt", []byte("bye"), 0o644)
	mustDo(t, os.Symlink("keep.txt", filepath.Join(src, "link")))
	backupWith(t, repoDir, src, func(*backup.Options) {})

	write(t, src, "edit.txt", []byte("after!"), 0o644)
	mustDo(t, os.Remove(filepath.Join(src, "gone.txt")))
	mustDo(t, os.RemoveAll(filepath.Join(src, "old")))
	write(t, src, "new/file.txt", []byte("hi"), 0o644)
	mustDo(t, os.Remove(filepath.Join(src, "link")))
	mustDo(t, os.Symlink("edit.txt", filepath.Join(src, "link")))

	var mu sync.Mutex
	var changes []string
	backupWith(t, repoDir, src, func(o *backup.Options) {
		o.OnChange = func(c backup.Change) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, c.Kind.String()+" "+c.Type+" "+strings.TrimPrefix(c.Path, src))
		}
	})
	sort.Strings(changes)
	want := []string{
		"added dir /new",
		"added file /new/file.txt",
		"modified file /edit.txt",
		"modified symlink /link",
		"removed dir /old",
		"removed file /gone.txt",
	}
	if strings.Join(changes, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes:\n%s\nwant:\n%s", strings.Join(changes, "\n"), strings.Join(want, "\n"))
	}
}

// growWhileRead appends to path until stop is closed.
func growWhileRead(t *testing.T, path string, stop <-chan struct{}, wg *sync.WaitGroup) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	mustDo(t, err)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer f.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = f.Write([]byte("appended line\n"))
			time.Sleep(200 * time.Microsecond)
		}
	}()
}

func TestFileChangingWhileReadKeepsPreviousVersion(t *testing.T) {
	repoDir := newTestRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	big := randomBytes(24<<20, 7)
	write(t, src, "busy.log", big, 0o644)
	write(t, src, "calm.txt", []byte("calm"), 0o644)
	first := backupWith(t, repoDir, src, func(*backup.Options) {})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	growWhileRead(t, filepath.Join(src, "busy.log"), stop, &wg)
	time.Sleep(10 * time.Millisecond)
	res := backupWith(t, repoDir, src, func(o *backup.Options) { o.KeepChanging = true })
	close(stop)
	wg.Wait()

	if len(res.Deferred) != 1 || res.Deferred[0] != filepath.Join(src, "busy.log") {
		t.Fatalf("deferred = %q, want busy.log (the file grew during every read)", res.Deferred)
	}
	if res.Incomplete() {
		t.Errorf("a deferred file is not an error: %v", res.Errors)
	}
	got := readFile(t, repoDir, res.Snapshot, filepath.Join(src, "busy.log"))
	want := readFile(t, repoDir, first.Snapshot, filepath.Join(src, "busy.log"))
	if got != want {
		t.Errorf("busy.log: snapshot holds %d bytes, want the previous version's %d", len(got), len(want))
	}
}

func TestFileChangingWhileReadIsStoredAsRead(t *testing.T) {
	repoDir := newTestRepo(t)
	src := filepath.Join(t.TempDir(), "src")
	write(t, src, "busy.log", randomBytes(24<<20, 8), 0o644)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	growWhileRead(t, filepath.Join(src, "busy.log"), stop, &wg)
	time.Sleep(10 * time.Millisecond)
	res := backupWith(t, repoDir, src, func(*backup.Options) {})
	close(stop)
	wg.Wait()

	if len(res.Deferred) != 0 {
		t.Errorf("deferred = %q without KeepChanging", res.Deferred)
	}
	got := readFile(t, repoDir, res.Snapshot, filepath.Join(src, "busy.log"))
	if len(got) < 24<<20 {
		t.Errorf("busy.log stored with %d bytes, want at least the %d it had", len(got), 24<<20)
	}
}

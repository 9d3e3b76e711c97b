package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/remotetest"
)

func TestConformance(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Backend {
		b, err := Create(context.Background(), filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestCreateLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	if _, err := Create(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	want := []string{"", "data", "data/00", "data/7f", "data/ff", "index", "keys", "locks", "snapshots"}
	for _, d := range want {
		fi, err := os.Stat(filepath.Join(dir, d))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want a folder with mode 0700", d, fi.Mode())
		}
	}
	subs, err := os.ReadDir(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if len(subs) != 256 {
		t.Errorf("data has %d subfolders, want 256", len(subs))
	}
}

func TestCreateRefusesExistingRepository(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, remote.Handle{Type: remote.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	_, err = Create(ctx, dir)
	if !errors.Is(err, remote.ErrExists) || !strings.Contains(err.Error(), "a repository already exists") {
		t.Fatalf("Create over a repository: %v", err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "nothing")
	noConfig := t.TempDir()
	if _, err := Create(ctx, noConfig); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{missing, noConfig, notDir} {
		_, err := Open(dir)
		if !remote.IsNotFound(err) {
			t.Errorf("Open(%s): %v, want ErrNotFound", dir, err)
			continue
		}
		if want := "no repository at " + dir + " (run `escrow init` first)"; !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%s): %q does not say %q", dir, err, want)
		}
	}

	c, err := Create(ctx, filepath.Join(t.TempDir(), "r"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx, remote.Handle{Type: remote.ConfigFile}, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(c.Location()); err != nil {
		t.Fatalf("Open of a repository: %v", err)
	}
}

func TestSaveFileMode(t *testing.T) {
	ctx := context.Background()
	b, err := Create(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := remote.Handle{Type: remote.PackFile, Name: "abcdef"}
	if err := b.Save(ctx, h, []byte("data")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(b.Location(), "data", "ab", "abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
}

func TestListIgnoresTempAndForeignFiles(t *testing.T) {
	ctx := context.Background()
	b, err := Create(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, remote.Handle{Type: remote.PackFile, Name: "abcdef"}, []byte("data")); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, remote.Handle{Type: remote.SnapshotFile, Name: "1234"}, []byte("s")); err != nil {
		t.Fatal(err)
	}
	// A crash can leave temp files; a user can leave anything.
	for _, p := range []string{"data/ab/.tmp-123", "snapshots/.tmp-456", "data/stray", "data/.hidden/x"} {
		full := filepath.Join(b.Location(), p)
		if err := os.MkdirAll(filepath.Dir(full), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(b.Location(), "snapshots", "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for ft, want := range map[remote.FileType]string{remote.PackFile: "abcdef", remote.SnapshotFile: "1234"} {
		var got []string
		err := b.List(ctx, ft, func(fi remote.FileInfo) error {
			got = append(got, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("list %s = %v, want [%s]", ft, got, want)
		}
	}
}

func TestListMissingFolderIsEmpty(t *testing.T) {
	ctx := context.Background()
	b, err := Create(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(b.Location(), "locks")); err != nil {
		t.Fatal(err)
	}
	if err := b.List(ctx, remote.LockFile, func(remote.FileInfo) error { return errors.New("called") }); err != nil {
		t.Fatal(err)
	}
	// Saving recreates it.
	if err := b.Save(ctx, remote.Handle{Type: remote.LockFile, Name: "aa"}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPermissionErrorNamesPathAndFix(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores file permissions")
	}
	ctx := context.Background()
	b, err := Create(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(b.Location(), "snapshots")
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	err = b.Save(ctx, remote.Handle{Type: remote.SnapshotFile, Name: "abcd"}, []byte("x"))
	if err == nil {
		t.Fatal("save into a read-only folder succeeded")
	}
	if !remote.IsPermanent(err) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "chown") {
		t.Errorf("error %q should be permanent, name %s and say how to fix it", err, dir)
	}
}

func TestFsErrorFixes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"disk full", &os.PathError{Op: "write", Path: "/repo/data/ab/.tmp-1", Err: syscall.ENOSPC}, "free space"},
		{"permission", &os.PathError{Op: "open", Path: "/repo/keys/x", Err: os.ErrPermission}, "owns /repo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fsError(tt.err, "/repo")
			if !remote.IsPermanent(err) {
				t.Errorf("%v is not permanent", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "/repo/") {
				t.Errorf("%q lacks the path or %q", err, tt.want)
			}
		})
	}
}

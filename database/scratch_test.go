//go:build unix

package database_test

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// A dump removes the private folders that dumps killed part way left in
// its temporary folder, and only those: a folder named for a running
// process, or this one's made since it started, is in use.
func TestDBDumpRemovesStaleLeftovers(t *testing.T) {
	testenv.RequireBinary(t, "sqlite3")
	r := newRepo(t)
	src := filepath.Join(t.TempDir(), "app.sqlite")
	sqliteShop(t, src, "wal")
	tmp := t.TempDir()

	// A PID that no longer runs: a child that has exited and been waited for.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strconv.Itoa(gone.Process.Pid)
	// A PID that runs: a child alive until the test ends.
	live := exec.Command("sleep", "600")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = live.Process.Kill(); _ = live.Wait() })
	alive := strconv.Itoa(live.Process.Pid)
	self := strconv.Itoa(os.Getpid())

	mk := func(name, file string, age time.Duration) string {
		t.Helper()
		d := filepath.Join(tmp, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, file), []byte("left behind"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(d, file)
	}
	stale := []string{
		mk("escrow-sqlite-"+dead+"-123", "copy.sqlite", time.Hour),
		mk("escrow-db-"+dead+"-456", "my.cnf", time.Hour),
		// This PID, but from before this process started: an earlier
		// process that had the same PID.
		mk("escrow-sqlite-"+self+"-789", "copy.sqlite", 24*time.Hour),
	}
	kept := []string{
		mk("escrow-sqlite-"+alive+"-123", "copy.sqlite", time.Hour),
		mk("escrow-db-"+self+"-456", "my.cnf", 0),
		mk("escrow-sqlite-notapid", "copy.sqlite", time.Hour), // not a name escrow makes
		mk("other-"+dead+"-1", "file", time.Hour),
	}

	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	res := dump(t, r, database.Spec{Type: database.SQLite, Path: src}, database.Options{TempDir: tmp, Logger: log})
	if len(res) != 1 || res[0].Snapshot == nil {
		t.Fatalf("results %+v", res)
	}
	for _, d := range stale {
		if _, err := os.Stat(filepath.Dir(d)); !os.IsNotExist(err) {
			t.Errorf("the stale %s was not removed (stat: %v)", d, err)
		}
		if !strings.Contains(logged.String(), filepath.Dir(d)) {
			t.Errorf("the removal of %s was not logged:\n%s", filepath.Dir(d), logged.String())
		}
	}
	for _, d := range kept {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s, in use or not escrow's, was removed: %v", d, err)
		}
	}
	// The dump's own folder is gone too: only the kept ones remain.
	left, _ := os.ReadDir(tmp)
	if len(left) != len(kept) {
		t.Errorf("%d entries left in the temporary folder, want the %d kept: %v", len(left), len(kept), left)
	}
}

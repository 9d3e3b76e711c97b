package database

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The private folders a dump or restore makes below its temporary folder
// are named PREFIX-PID-RANDOM, so that a later run can tell a folder left by
// a killed escrow (its process is gone) from one a running escrow still
// uses, and remove the first kind: an SQLite copy can be as large as the
// database.
const (
	secretsPrefix = "escrow-db-"     // credential files for the MySQL and PostgreSQL tools
	sqlitePrefix  = "escrow-sqlite-" // SQLite's consistent copy
)

// processStart is when this process started, near enough: a folder named
// with this process's PID but older than that was left by an earlier
// process that had the same PID (PIDs repeat across reboots).
var processStart = time.Now()

// makeScratch makes a private folder (mode 0700) below parent named for
// this process.
func makeScratch(parent, prefix string) (string, error) {
	return os.MkdirTemp(parent, prefix+strconv.Itoa(os.Getpid())+"-")
}

// RemoveStale removes the private folders that dumps or restores killed
// part way left in dir: those named for a process that no longer runs, or
// for this process's PID but made before it started. It logs each removal
// and returns the paths removed; a folder it cannot remove is logged and
// left for the next run.
func RemoveStale(dir string, log *slog.Logger) []string {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			log.Warn("cannot look for leftovers of interrupted dumps", "dir", dir, "err", err)
		}
		return nil
	}
	var removed []string
	for _, e := range entries {
		pid, ok := scratchPID(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		if pid == os.Getpid() {
			info, err := e.Info()
			if err != nil || !info.ModTime().Before(processStart) {
				continue // this process's own, maybe in use
			}
		} else if processRuns(pid) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.RemoveAll(p); err != nil {
			log.Warn("cannot remove the leftover of an interrupted dump; remove it by hand", "path", p, "err", err)
			continue
		}
		log.Info("removed the leftover of an interrupted dump", "path", p, "pid", pid)
		removed = append(removed, p)
	}
	return removed
}

// scratchPID reads the PID from a private folder's name.
func scratchPID(name string) (int, bool) {
	for _, prefix := range []string{secretsPrefix, sqlitePrefix} {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		pid, _, ok := strings.Cut(rest, "-")
		if !ok {
			return 0, false
		}
		n, err := strconv.Atoi(pid)
		return n, err == nil && n > 0
	}
	return 0, false
}

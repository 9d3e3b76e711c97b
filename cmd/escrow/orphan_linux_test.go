package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/failpoint"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// A dump tool does not outlive a SIGKILLed escrow, and the private folder
// the killed dump left is removed by the next dump.
//
// "locked": escrow dies while sqlite3 waits (up to its busy timeout) for
// a lock another process holds, writing nothing: only the death signal
// escrow asks the kernel for stops it, where before it held the database
// for another minute. "dump-mid": escrow dies at the failpoint while
// sqlite3 streams .dump; here the broken pipe alone would stop it too.
func TestDumpToolDiesWithEscrow(t *testing.T) {
	sqlite3 := testenv.RequireBinary(t, "sqlite3")
	for _, tc := range []string{"locked", "dump-mid"} {
		t.Run(tc, func(t *testing.T) {
			dir := t.TempDir()
			db := sqliteSource(t, dir, 15000)
			tmp := t.TempDir()
			c := newCLI(t, filepath.Join(dir, "repo"), "TMPDIR="+tmp)
			c.ok("init")
			args := []string{"db", "dump", "--type", "sqlite", "--path", db, "--name", "app"}

			var p *proc
			var lock *sqliteLock
			if tc == "locked" {
				lock = holdExclusiveLock(t, sqlite3, db)
				p = c.start(nil, args...)
				// Wait until escrow's sqlite3 runs and waits for the lock.
				if !waitFor(30*time.Second, func() bool { return len(processesOn(db, lock.pid)) > 0 }) {
					t.Fatalf("escrow's sqlite3 did not start:\n%s", p.out.String())
				}
				time.Sleep(200 * time.Millisecond)
				if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = p.cmd.Wait()
			} else {
				p = c.start([]string{failpoint.EnvVar + "=" + string(failpoint.DumpMid)}, args...)
				if err := p.cmd.Wait(); !killedBy(err, syscall.SIGKILL) {
					t.Fatalf("want death by SIGKILL at the failpoint, got %v\n%s", err, p.out.String())
				}
			}
			var left []int
			waitFor(5*time.Second, func() bool {
				left = processesOn(db, lock.holder())
				return len(left) == 0
			})
			if len(left) > 0 {
				t.Fatalf("dump tool processes %v still run 5 s after escrow was killed", left)
			}

			// The killed dump's copy of the database is named for its
			// process; the next dump removes it.
			pid := strconv.Itoa(p.cmd.Process.Pid)
			stale, _ := filepath.Glob(filepath.Join(tmp, "escrow-sqlite-"+pid+"-*"))
			if tc == "dump-mid" && len(stale) != 1 {
				t.Fatalf("want the killed dump's folder escrow-sqlite-%s-* in TMPDIR, found %v", pid, stale)
			}
			lock.release(t)
			c.ok(args...)
			if rest, _ := os.ReadDir(tmp); len(rest) != 0 {
				t.Errorf("after the next dump TMPDIR still holds %v", rest)
			}
		})
	}
}

// sqliteLock is an sqlite3 shell holding an exclusive lock on a database
// in rollback-journal mode, which keeps every other reader out.
type sqliteLock struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	pid int
}

func holdExclusiveLock(t *testing.T, sqlite3, db string) *sqliteLock {
	t.Helper()
	cmd := exec.Command(sqlite3, "-batch", db)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &sqliteLock{cmd: cmd, in: in, pid: cmd.Process.Pid}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The marker comes back once the lock is held.
	if _, err := io.WriteString(in, "BEGIN EXCLUSIVE; SELECT 'locked' FROM notes LIMIT 1;\n"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "locked") {
		t.Fatalf("sqlite3 did not take the lock: %q, %v", line, err)
	}
	return l
}

// holder is the lock holder's PID, 0 without a lock.
func (l *sqliteLock) holder() int {
	if l == nil {
		return 0
	}
	return l.pid
}

func (l *sqliteLock) release(t *testing.T) {
	t.Helper()
	if l == nil {
		return
	}
	_ = l.in.Close() // the shell ends and its transaction with it
	if err := l.cmd.Wait(); err != nil {
		t.Fatalf("the sqlite3 holding the lock: %v", err)
	}
}

// processesOn lists the running (not zombie) processes other than except
// whose command line names path.
func processesOn(path string, except int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == except || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(path)) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitFor polls cond until it holds, or d has passed and it returns false.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

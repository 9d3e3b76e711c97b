//go:build unix

package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDBPassword is the password of the database users the test servers
// create. It holds the characters that break naive quoting in option files,
// pgpass files, SQL literals and shells, so every path a password travels
// is exercised.
const TestDBPassword = `s3cr:et "#x'\y $z;`

// sharedServer is one server per test binary, started on first use and
// stopped by Main.
type sharedServer[T any] struct {
	once sync.Once
	srv  T
	err  error
}

func (s *sharedServer[T]) get(start func() (T, error)) (T, error) {
	s.once.Do(func() { s.srv, s.err = start() })
	return s.srv, s.err
}

// This test binary's database servers; see the note on shared in minio.go.
var (
	sharedMariaDB  sharedServer[*MariaDBServer]
	sharedPostgres sharedServer[*PostgresServer]
)

func stopDatabases() {
	if s := sharedMariaDB.srv; s != nil {
		s.stop()
	}
	if s := sharedPostgres.srv; s != nil {
		s.stop()
	}
}

// serverProc is a database server process owned by the test binary. It runs
// in its own process group, so that killing it takes its helper processes
// (PostgreSQL's backends) with it, as a crash or an OOM kill would.
type serverProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been reaped
	log    string

	mu     sync.Mutex
	killed bool
}

// startServer starts cmd with its output in logPath and waits until the log
// shows ready.
func startServer(cmd *exec.Cmd, logPath, ready string, limit time.Duration) (*serverProc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	setDeathSignal(cmd)
	p := &serverProc{cmd: cmd, exited: make(chan struct{}), log: logPath}
	started := make(chan error, 1)
	go func() {
		// As for MinIO: the death signal fires when this thread exits, so
		// it lives as long as the server.
		runtime.LockOSThread()
		defer logf.Close()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	deadline := time.Now().Add(limit)
	for {
		data, _ := os.ReadFile(logPath)
		if strings.Contains(string(data), ready) {
			return p, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited during startup; log:\n%s", filepath.Base(cmd.Path), tail(logPath))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return nil, fmt.Errorf("%s not ready after %s; log:\n%s", filepath.Base(cmd.Path), limit, tail(logPath))
		}
	}
}

// kill sends SIGKILL to the server's process group and waits for it.
func (p *serverProc) kill() {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// findProgram looks for the first of names in PATH and then in dirs.
func findProgram(names []string, dirs ...string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	for _, d := range dirs {
		for _, n := range names {
			p := filepath.Join(d, n)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", strings.Join(names, " or "), strings.Join(dirs, ", "))
}

// runLogged runs a setup command, returning its output in the error.
func runLogged(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := strings.TrimSpace(string(out))
		if len(s) > 3000 {
			s = s[len(s)-3000:]
		}
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, s)
	}
	return nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	addr, err := freeAddr()
	if err != nil {
		return 0, err
	}
	var port int
	_, err = fmt.Sscanf(addr[strings.LastIndex(addr, ":")+1:], "%d", &port)
	return port, err
}

// retryStart tries start a few times: a free port found by listening can be
// taken by someone else before the server binds it.
func retryStart[T any](start func() (T, error)) (T, error) {
	var zero T
	var errs []error
	for range 3 {
		s, err := start()
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return zero, errors.Join(errs...)
}

// serverFor returns the shared server or fails/skips the test.
func serverFor[T any](t testing.TB, s *sharedServer[T], what string, start func() (T, error)) T {
	t.Helper()
	srv, err := s.get(start)
	if err != nil {
		unavailable(t, "no %s server for database tests: %v", what, err)
	}
	return srv
}

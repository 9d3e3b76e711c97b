package testenv

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// shared is this test binary's MinIO server. It is package state because a
// test binary is one process whose tests share one server, started on first
// use and stopped by Main; nothing outside tests imports this package.
var shared = &minioProc{}

type minioProc struct {
	once sync.Once
	srv  Server
	err  error

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has been reaped
	dir    string
}

func (p *minioProc) get() (Server, error) {
	p.once.Do(func() { p.srv, p.err = p.start() })
	return p.srv, p.err
}

// minioBinary finds the server program: ESCROW_MINIO_BIN, then PATH, then
// the cache that scripts/test-deps.sh fills.
func minioBinary() (string, error) {
	if p := os.Getenv("ESCROW_MINIO_BIN"); p != "" {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
		// Fall through: the Makefile exports the cache path even before
		// the first build, and PATH may still have one.
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "escrow-ci", "bin", "minio")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("minio binary not found in ESCROW_MINIO_BIN, PATH or $HOME/.cache/escrow-ci/bin")
}

func (p *minioProc) start() (Server, error) {
	bin, err := minioBinary()
	if err != nil {
		return Server{}, err
	}
	dir, err := os.MkdirTemp("", "escrow-minio-")
	if err != nil {
		return Server{}, fmt.Errorf("minio data folder: %w", err)
	}
	p.dir = dir
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Server{}, err
	}
	srv := Server{AccessKey: "escrow-test", SecretKey: hex.EncodeToString(b[:])}

	// A free port found by listening can be taken by someone else before
	// MinIO binds it; try a few times.
	var lastErr error
	for range 3 {
		addr, err := freeAddr()
		if err != nil {
			return Server{}, err
		}
		srv.Endpoint = addr
		if lastErr = p.run(bin, dir, srv); lastErr == nil {
			return srv, nil
		}
	}
	p.stop()
	return Server{}, lastErr
}

// run starts MinIO on srv.Endpoint and waits until it is live.
func (p *minioProc) run(bin, dir string, srv Server) error {
	console, err := freeAddr()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "minio.log"))
	if err != nil {
		return err
	}
	defer logf.Close()

	cmd := exec.Command(bin, "server",
		"--address", srv.Endpoint,
		"--console-address", console,
		"--certs-dir", filepath.Join(dir, "certs"), // never the user's ~/.minio
		filepath.Join(dir, "data"))
	// Credentials go through the environment, never argv (visible in ps).
	cmd.Env = append(withoutMinIOEnv(os.Environ()),
		"MINIO_ROOT_USER="+srv.AccessKey,
		"MINIO_ROOT_PASSWORD="+srv.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	setDeathSignal(cmd)

	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		// Linux sends the death signal when the thread that started the
		// child exits, not the process; keep this thread for the child's
		// whole life so MinIO dies with the test binary even if Main is
		// never reached (a panic, a timeout, a missing TestMain).
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()

	if err := waitLive(srv.Endpoint, exited, time.Minute); err != nil {
		p.kill()
		return fmt.Errorf("minio on %s: %w; log:\n%s", srv.Endpoint, err, tail(filepath.Join(dir, "minio.log")))
	}
	return nil
}

func withoutMinIOEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "MINIO_") {
			out = append(out, kv)
		}
	}
	return out
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

func waitLive(endpoint string, exited <-chan struct{}, limit time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	url := "http://" + endpoint + "/minio/health/live"
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited during startup")
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not live after %s", limit)
}

func tail(name string) string {
	data, _ := os.ReadFile(name)
	if len(data) > 4000 {
		data = data[len(data)-4000:]
	}
	return string(bytes.TrimSpace(data))
}

// kill ends the current process, politely first.
func (p *minioProc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// stop ends the server and removes its data.
func (p *minioProc) stop() {
	p.kill()
	if p.dir != "" {
		_ = os.RemoveAll(p.dir)
	}
}

package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
)

// RestartableMinIO is a MinIO server one test owns: it can be stopped and
// started again on the same address with the same data folder, so that a
// test can take the store away in the middle of an upload and give it back.
// The shared server (MinIO) must never be stopped: other tests use it.
type RestartableMinIO struct {
	Server
	bin  string
	proc *minioProc
}

// NewRestartableMinIO starts a MinIO server for t alone, stopped and
// removed when t ends. It skips (fails in CI) when there is no MinIO binary.
func NewRestartableMinIO(t testing.TB) *RestartableMinIO {
	t.Helper()
	bin, err := minioBinary()
	if err != nil {
		unavailable(t, "no MinIO server for S3 tests: %v", err)
	}
	dir, err := os.MkdirTemp("", "escrow-minio-own-")
	if err != nil {
		t.Fatalf("minio data folder: %v", err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	m := &RestartableMinIO{
		Server: Server{AccessKey: "escrow-test", SecretKey: hex.EncodeToString(b[:])},
		bin:    bin, proc: &minioProc{dir: dir},
	}
	t.Cleanup(m.proc.stop)
	var lastErr error
	for range 3 {
		if m.Endpoint, err = freeAddr(); err != nil {
			t.Fatal(err)
		}
		if lastErr = m.proc.run(bin, dir, m.Server); lastErr == nil {
			return m
		}
	}
	t.Fatalf("start a MinIO server of its own: %v", lastErr)
	return nil
}

// Stop ends the server (SIGTERM, then SIGKILL after 10s) and waits until it
// has exited: from then on connections to its address are refused.
func (m *RestartableMinIO) Stop() { m.proc.kill() }

// Start runs the server again on the same address and data, and waits until
// it is live. It returns an error rather than failing the test so that a
// goroutine other than the test's may call it; another process may have
// taken the port meanwhile.
func (m *RestartableMinIO) Start() error {
	if err := m.proc.run(m.bin, m.proc.dir, m.Server); err != nil {
		return fmt.Errorf("restart MinIO on %s: %w", m.Endpoint, err)
	}
	return nil
}

// Running reports whether the server process is up.
func (m *RestartableMinIO) Running() bool {
	m.proc.mu.Lock()
	defer m.proc.mu.Unlock()
	return m.proc.cmd != nil
}

func (m *RestartableMinIO) String() string { return fmt.Sprintf("MinIO on %s", m.Endpoint) }

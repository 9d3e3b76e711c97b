package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestDebugProfiles runs a command with the CPU profile and the execution
// trace asked for, and checks that each file holds what its tool reads: a
// gzipped profile and a trace with its header.
func TestDebugProfiles(t *testing.T) {
	dir := t.TempDir()
	cpu, tr := filepath.Join(dir, "cpu.pb.gz"), filepath.Join(dir, "trace.out")
	vars := map[string]string{cpuDebugEnv: cpu, traceDebugEnv: tr}
	var out, errs bytes.Buffer
	code := run(context.Background(), []string{"version"}, env{
		stdin: bytes.NewReader(nil), stdout: &out, stderr: &errs,
		getenv: func(k string) string { return vars[k] },
	})
	if code != 0 {
		t.Fatalf("escrow version exited %d: %s", code, errs.String())
	}
	for path, magic := range map[string][]byte{cpu: {0x1f, 0x8b}, tr: []byte("go 1.")} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, magic) {
			t.Errorf("%s starts %q, want %q", filepath.Base(path), b[:min(len(b), 8)], magic)
		}
	}
}

// TestDebugTraceUnwritable checks that a trace file that cannot be made
// stops the command with a message naming the variable.
func TestDebugTraceUnwritable(t *testing.T) {
	vars := map[string]string{traceDebugEnv: filepath.Join(t.TempDir(), "missing", "trace.out")}
	var errs bytes.Buffer
	code := run(context.Background(), []string{"version"}, env{
		stdin: bytes.NewReader(nil), stdout: &bytes.Buffer{}, stderr: &errs,
		getenv: func(k string) string { return vars[k] },
	})
	if code != 1 || !bytes.Contains(errs.Bytes(), []byte(traceDebugEnv)) {
		t.Fatalf("exit %d, stderr %q: want 1 and a message naming %s", code, errs.String(), traceDebugEnv)
	}
}

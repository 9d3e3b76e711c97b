package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// Each backup is one log line with its figures.
func TestAgentLogsOneLinePerRun(t *testing.T) {
	r := newRepo(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a.txt"), "12345")
	var buf lockedBuffer
	a, err := agent.New(r, agent.Options{
		Sources: []agent.Source{{Path: src, Watch: true}}, Host: "log-test",
		QuietPeriod: 100 * time.Millisecond, RescanEvery: time.Hour, StateDir: filepath.Join(t.TempDir(), "state"),
		HeartbeatEvery: -1, Logger: slog.New(slog.NewJSONHandler(&buf, nil)),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for a.Status().Sources[0].LastSnapshot == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	must(t, <-done)
	var saved []map[string]any
	for _, l := range buf.lines() {
		if l["msg"] == "snapshot saved" {
			saved = append(saved, l)
		}
	}
	if len(saved) != 1 {
		t.Fatalf("%d snapshot lines, want 1: %v", len(saved), buf.lines())
	}
	l := saved[0]
	for k, want := range map[string]any{"source": src, "kind": "rescan", "reason": "start", "files_new": 1.0, "bytes_read": 5.0, "missed_by_watcher": 0.0, "unreadable": 0.0} {
		if l[k] != want {
			t.Errorf("%s = %v, want %v (line %v)", k, l[k], want, l)
		}
	}
	for _, k := range []string{"bytes_added", "bytes_stored", "seconds", "snapshot", "files_examined"} {
		if _, ok := l[k]; !ok {
			t.Errorf("no %s in %v", k, l)
		}
	}
}

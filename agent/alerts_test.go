package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/notify"
	"github.com/escrow-backup/escrow/repo"
)

// inbox is a local webhook receiver that keeps the events it is sent.
type inbox struct {
	mu     sync.Mutex
	events []notify.Event
}

// notifier returns a Notifier that POSTs to a new inbox, running until
// the test ends.
func newInbox(t *testing.T) (*inbox, *notify.Notifier) {
	in := &inbox{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e notify.Event
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		in.mu.Lock()
		in.events = append(in.events, e)
		in.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	wh, err := notify.NewWebhook(srv.URL, notify.StyleJSON, nil)
	must(t, err)
	n := notify.New([]notify.Sender{wh}, notify.Options{Host: "agent-test", Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return in, n
}

// wait returns the events once one matches ok.
func (in *inbox) wait(t *testing.T, what string, ok func(notify.Event) bool) notify.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		in.mu.Lock()
		for _, e := range in.events {
			if ok(e) {
				in.mu.Unlock()
				return e
			}
		}
		in.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	t.Fatalf("no %s alert; got %+v", what, in.events)
	return notify.Event{}
}

func (in *inbox) count(kind notify.Kind) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, e := range in.events {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// Deleting most of a source's files at once sends an alert and tags the
// snapshot before it pre-deletion, by a new snapshot object that leaves
// the old one in place; deleting a few files does neither.
func TestAgentMassDeletion(t *testing.T) {
	r := newRepo(t)
	in, n := newInbox(t)
	src := t.TempDir()
	for i := range 40 {
		dir := "keep"
		if i >= 10 {
			dir = "uploads"
		}
		writeFile(t, filepath.Join(src, dir, fmt.Sprintf("f%02d.txt", i)), fmt.Sprint(i))
	}
	a, err := agent.New(r, agent.Options{
		Sources: []agent.Source{{Path: src, Watch: true}}, Host: "agent-test",
		QuietPeriod: 100 * time.Millisecond, RescanEvery: time.Hour, StateDir: filepath.Join(t.TempDir(), "state"),
		HeartbeatEvery: -1, Alerts: n, Logger: testLogger(t),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); must(t, <-done) }()
	waitSnapshot := func(after string) string {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if sn := a.Status().Sources[0].LastSnapshot; sn != nil && sn.ID != after && a.Status().Sources[0].PendingSince.IsZero() {
				return sn.ID
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no new snapshot after %s: %+v", after, a.Status().Sources[0])
		return ""
	}
	first := waitSnapshot("")

	// One file: an ordinary edit.
	must(t, os.Remove(filepath.Join(src, "keep", "f00.txt")))
	second := waitSnapshot(first)
	// 30 of the 39 left, a whole directory: a wipe.
	must(t, os.RemoveAll(filepath.Join(src, "uploads")))
	third := waitSnapshot(second)

	e := in.wait(t, "mass deletion", func(e notify.Event) bool { return e.Kind == notify.MassDeletion })
	if e.Subject != src || !strings.Contains(e.Message, "30 of the 39 files") || !strings.Contains(e.Message, "pre-deletion") {
		t.Errorf("alert %+v", e)
	}
	if in.count(notify.MassDeletion) != 1 {
		t.Errorf("%d mass deletion alerts, want 1", in.count(notify.MassDeletion))
	}
	snaps, err := r.Snapshots(context.Background())
	must(t, err)
	var tagged []*repo.Snapshot
	ids := map[string]bool{}
	for _, sn := range snaps {
		ids[sn.ID.String()] = true
		if sn.HasTag(repo.TagPreDeletion) {
			tagged = append(tagged, sn)
		}
	}
	if len(tagged) != 1 || tagged[0].Original == nil || tagged[0].Original.String() != second || !ids[second] || !ids[third] {
		t.Fatalf("tagged %+v; snapshots %v; want a copy of %s", tagged, ids, second)
	}
	if !strings.Contains(e.Message, tagged[0].ID.Str()) {
		t.Errorf("the alert does not name the tagged snapshot %s: %s", tagged[0].ID.Str(), e.Message)
	}
}

// A failing job alerts once per failure streak and sends a recovery
// notice; a dump that shrinks sharply is a suspected mass deletion and
// tags the previous dump's snapshot.
func TestAgentJobAlerts(t *testing.T) {
	r := newRepo(t)
	in, n := newInbox(t)
	dump := t.TempDir()
	var mu sync.Mutex
	var runs int
	sizes := []int{0, 0, 1 << 20, 100 << 10} // failure, failure, then 1 MiB, then 100 KiB
	job := func(ctx context.Context) (agent.JobResult, error) {
		mu.Lock()
		i := runs
		runs++
		mu.Unlock()
		i = min(i, len(sizes)-1) // then steady
		if sizes[i] == 0 {
			return agent.JobResult{}, errors.New("mysqldump: access denied")
		}
		writeFile(t, filepath.Join(dump, "shop.sql"), strings.Repeat("x", sizes[i]))
		res, err := backup.Files(ctx, r, backup.Options{Paths: []string{dump}, Host: "agent-test", NoParent: true})
		if err != nil {
			return agent.JobResult{}, err
		}
		return agent.JobResult{Snapshots: []string{res.Snapshot.ID.String()}, Bytes: uint64(sizes[i])}, nil
	}
	a, err := agent.New(r, agent.Options{
		Jobs: []agent.Job{{Name: "database shop", Every: 200 * time.Millisecond, FreshWithin: time.Minute, Run: job}},
		Host: "agent-test", StateDir: filepath.Join(t.TempDir(), "state"), HeartbeatEvery: -1,
		Alerts: n, Logger: testLogger(t),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
		// Backoff after a failure is a minute: a clock that runs fast
		// makes the retries due at once.
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return time.Now().Add(time.Duration(runs) * 10 * time.Minute)
		},
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); must(t, <-done) }()

	f := in.wait(t, "dump failed", func(e notify.Event) bool { return e.Kind == notify.DumpFailed && !e.Recovered })
	if f.Subject != "database shop" || !strings.Contains(f.Message, "access denied") {
		t.Errorf("failure alert %+v", f)
	}
	in.wait(t, "recovery", func(e notify.Event) bool { return e.Kind == notify.DumpFailed && e.Recovered })
	m := in.wait(t, "mass deletion", func(e notify.Event) bool { return e.Kind == notify.MassDeletion })
	if !strings.Contains(m.Message, "shrank from 1048576 to 102400 bytes") {
		t.Errorf("shrink alert %+v", m)
	}
	for {
		mu.Lock()
		enough := runs > len(sizes)+2
		mu.Unlock()
		if enough {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c := in.count(notify.DumpFailed); c != 2 {
		t.Errorf("%d dump alerts, want one failure (two failures in a row are one streak) and one recovery", c)
	}
	snaps, err := r.Snapshots(context.Background())
	must(t, err)
	tagged := 0
	for _, sn := range snaps {
		if sn.HasTag(repo.TagPreDeletion) {
			tagged++
		}
	}
	if tagged != 1 {
		t.Errorf("%d pre-deletion snapshots, want 1", tagged)
	}
}

// States are checked on every heartbeat tick: a database older than its
// target, an unconfirmed kit and a doctor verdict that got worse are sent,
// and a verdict that is good again sends a recovery notice.
func TestAgentStateAlerts(t *testing.T) {
	r := newRepo(t)
	in, n := newInbox(t)
	state := filepath.Join(t.TempDir(), "state")
	must(t, os.MkdirAll(state, 0o700))
	verdict := func(ok bool) {
		data := fmt.Sprintf(`{"time":"2026-11-20T10:00:00Z","verdict":"v%v","tamper_proof":%v}`, ok, ok)
		must(t, os.WriteFile(filepath.Join(state, "doctor.json"), []byte(data), 0o600))
	}
	verdict(true)
	var mu sync.Mutex
	offset := time.Duration(0)
	a, err := agent.New(r, agent.Options{
		Jobs: []agent.Job{{Name: "database shop", Every: time.Hour, FreshWithin: time.Minute, Run: func(context.Context) (agent.JobResult, error) {
			return agent.JobResult{}, errors.New("server unreachable")
		}}},
		Host: "agent-test", StateDir: state, HeartbeatEvery: 100 * time.Millisecond,
		KitConfirmed: func() bool { return false }, Alerts: n, Logger: testLogger(t),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
		Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) },
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); must(t, <-done) }()

	in.wait(t, "kit", func(e notify.Event) bool {
		return e.Kind == notify.KitUnconfirmed && strings.Contains(e.Message, "escrow kit confirm")
	})
	time.Sleep(300 * time.Millisecond)
	if c := in.count(notify.Stale) + in.count(notify.EscrowWorse); c != 0 {
		t.Fatalf("%d stale or escrow alerts before anything went stale or worse", c)
	}
	mu.Lock()
	offset = 2 * time.Minute
	mu.Unlock()
	s := in.wait(t, "stale", func(e notify.Event) bool { return e.Kind == notify.Stale })
	if s.Subject != "database shop" || !strings.Contains(s.Message, "no good backup") {
		t.Errorf("stale alert %+v", s)
	}
	verdict(false)
	w := in.wait(t, "escrow worse", func(e notify.Event) bool { return e.Kind == notify.EscrowWorse && !e.Recovered })
	if !strings.Contains(w.Message, "vfalse") {
		t.Errorf("escrow alert %+v", w)
	}
	verdict(true)
	in.wait(t, "escrow recovered", func(e notify.Event) bool { return e.Kind == notify.EscrowWorse && e.Recovered })
	if c := in.count(notify.KitUnconfirmed); c != 1 {
		t.Errorf("%d kit alerts within repeat_after, want 1", c)
	}
}

// A source whose backup fails is alerted once, and a recovery notice
// follows the next good backup.
func TestAgentBackupFailedAlert(t *testing.T) {
	r := newRepo(t)
	in, n := newInbox(t)
	src := filepath.Join(t.TempDir(), "site")
	writeFile(t, filepath.Join(src, "a.txt"), "a")
	a, err := agent.New(r, agent.Options{
		Sources: []agent.Source{{Path: src, Watch: false}}, Host: "agent-test",
		RescanEvery: time.Hour, StateDir: filepath.Join(t.TempDir(), "state"),
		HeartbeatEvery: -1, Alerts: n, Logger: testLogger(t),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
	})
	must(t, err)
	// The source is gone when the agent starts: its first backup fails.
	must(t, os.Rename(src, src+".moved"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); must(t, <-done) }()
	f := in.wait(t, "backup failed", func(e notify.Event) bool { return e.Kind == notify.BackupFailed && !e.Recovered })
	if f.Subject != src || !strings.Contains(f.Message, "retried in") {
		t.Errorf("failure alert %+v", f)
	}
	must(t, os.Rename(src+".moved", src))
	a.Rescan()
	in.wait(t, "recovery", func(e notify.Event) bool { return e.Kind == notify.BackupFailed && e.Recovered })
	if c := in.count(notify.BackupFailed); c != 2 {
		t.Errorf("%d backup alerts, want one failure and one recovery", c)
	}
}

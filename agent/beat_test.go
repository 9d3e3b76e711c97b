package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/heartbeat"
	"github.com/escrow-backup/escrow/remote"
)

// readHeartbeats lists and parses every heartbeat in the repository's store.
func readHeartbeats(t *testing.T, be remote.Backend) []*heartbeat.Heartbeat {
	t.Helper()
	var out []*heartbeat.Heartbeat
	err := be.List(context.Background(), remote.HeartbeatFile, func(fi remote.FileInfo) error {
		data, err := remote.LoadAll(context.Background(), be, remote.Handle{Type: remote.HeartbeatFile, Name: fi.Name})
		if err != nil {
			return err
		}
		hb, err := heartbeat.Parse(data)
		if err != nil {
			return err
		}
		if fi.Name != hb.HostID+heartbeat.Suffix {
			t.Errorf("heartbeat object %s holds host ID %s", fi.Name, hb.HostID)
		}
		out = append(out, hb)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The agent writes its heartbeat to the store beside restic's folders, at
// start, on its period and when it stops, with what a fleet view needs; a
// restart keeps the host ID.
func TestAgentWritesHeartbeats(t *testing.T) {
	r := newS3Repo(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "index.php"), "<?php echo 1;")
	state := filepath.Join(t.TempDir(), "state")
	must(t, os.MkdirAll(state, 0o700))
	// A newer doctor's file, with fields this version does not know.
	must(t, os.WriteFile(filepath.Join(state, heartbeat.DoctorFile),
		[]byte(`{"time":"2026-11-20T10:00:00Z","verdict":"tamper-proof","tamper_proof":true,"protection_days":30,"checks":[{"name":"x"}]}`), 0o600))

	run := func(until func(*agent.Agent) bool) {
		a, err := agent.New(r, agent.Options{
			Sources: []agent.Source{{Path: src, Watch: true}}, Host: "Web 1.example.com",
			QuietPeriod: 100 * time.Millisecond, RescanEvery: time.Hour, StateDir: state,
			HeartbeatEvery: 300 * time.Millisecond, KitConfirmed: func() bool { return true },
			ProgramVersion: "escrow test", Logger: testLogger(t),
			CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
		})
		must(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for !until(a) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out; status %+v", a.Status())
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		must(t, <-done)
	}
	// Two heartbeats after the first rescan: the second carries it.
	var firstBeat time.Time
	run(func(a *agent.Agent) bool {
		st := a.Status()
		if st.Sources[0].Verified.IsZero() || st.LastHeartbeat.IsZero() {
			return false
		}
		if firstBeat.IsZero() {
			firstBeat = st.LastHeartbeat
		}
		return st.LastHeartbeat.After(st.Sources[0].Verified) && st.LastHeartbeat.After(firstBeat)
	})

	hbs := readHeartbeats(t, r.Backend())
	if len(hbs) != 1 {
		t.Fatalf("%d heartbeats, want 1", len(hbs))
	}
	hb := hbs[0]
	switch {
	case !strings.HasPrefix(hb.HostID, "web-1.example.com-"):
		t.Errorf("host ID %q does not start with the cleaned host name", hb.HostID)
	case hb.Host != "Web 1.example.com" || hb.Version != "escrow test":
		t.Errorf("heartbeat %+v", hb)
	case !hb.Stopped:
		t.Error("the last heartbeat of a stopped agent does not say it stopped")
	case hb.RepositoryID != r.Config().ID || !hb.KitConfirmed:
		t.Errorf("repository ID %q, kit confirmed %v", hb.RepositoryID, hb.KitConfirmed)
	case len(hb.Sources) != 1 || hb.Sources[0].Name != src || hb.Sources[0].LastGood.IsZero() || hb.Sources[0].LastSnapshot == "":
		t.Errorf("sources %+v", hb.Sources)
	case hb.Sources[0].FreshSeconds != int64(2*time.Hour/time.Second):
		t.Errorf("fresh_seconds %d, want twice rescan_every", hb.Sources[0].FreshSeconds)
	case hb.Escrow == nil || hb.Escrow.Verdict != "tamper-proof" || !hb.Escrow.TamperProof:
		t.Errorf("escrow verdict %+v", hb.Escrow)
	}
	id := hb.HostID

	// restic's folders are untouched: the heartbeat is not a snapshot,
	// index or lock.
	snaps, err := r.Snapshots(context.Background())
	must(t, err)
	if len(snaps) != 1 {
		t.Errorf("%d snapshots, want 1", len(snaps))
	}

	// A restart writes under the same ID and reports itself running.
	run(func(a *agent.Agent) bool { return !a.Status().LastHeartbeat.IsZero() })
	hbs = readHeartbeats(t, r.Backend())
	if len(hbs) != 1 || hbs[0].HostID != id || !hbs[0].Time.After(hb.Time) {
		t.Errorf("after a restart: %+v (first ID %s)", hbs, id)
	}
}

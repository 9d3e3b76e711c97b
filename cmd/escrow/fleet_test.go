//go:build unix

package main

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/fleet"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// escrow fleet, run with read access to the whole bucket, finds the
// heartbeat of a running agent under its prefix, reads the repository's
// newest snapshot when given the password, and exits 5 once the server
// goes silent (killed, so no last heartbeat).
func TestFleetCommand(t *testing.T) {
	s := newAgentSetup(t)
	cfg, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.writeConfig(t, string(cfg)+"heartbeat_every: 10s\n")
	p := s.start(t)
	s.settled(t, p)

	bucketURL := strings.TrimSuffix(s.repoURL, "/site")
	srv := testenv.MinIO(t)
	// Without a password: heartbeats only.
	ro := &cli{t: t, env: append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, srv.Env()...)}
	var rep fleet.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ro.run(nil, "fleet", "--repo", bucketURL, "--json")
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("escrow fleet --json: exit %d: %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
		}
		if r.code == 0 && len(rep.Hosts) == 1 && !rep.Hosts[0].Heartbeat.Sources[0].LastGood.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no healthy host within 30s: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		time.Sleep(300 * time.Millisecond)
	}
	h := rep.Hosts[0]
	if h.State != fleet.StateOK || h.Dir != "site" || len(h.Latest) != 0 || len(rep.Repositories) != 1 || rep.Repositories[0].Read {
		t.Errorf("without a password: %+v %+v", h, rep.Repositories)
	}

	// With the password (in the environment), the snapshots too; the text
	// table names the host.
	r := s.c.run(nil, "fleet", "--repo", bucketURL)
	if r.code != 0 || !strings.Contains(r.stdout, h.Name) || !strings.Contains(r.stdout, "OK") ||
		!strings.Contains(r.stdout, "newest snapshot of "+s.src) || !strings.Contains(r.stdout, "1 hosts: 1 ok") {
		t.Errorf("escrow fleet: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	t.Logf("escrow fleet:\n%s", r.stdout)

	// The server vanishes: no last heartbeat. Past --stale it is silent.
	_ = p.stop(syscall.SIGKILL)
	time.Sleep(2 * time.Second)
	r = ro.run(nil, "fleet", "--repo", bucketURL, "--stale", "1s")
	if r.code != exitSilent || !strings.Contains(r.stdout, "SILENT") || !strings.Contains(r.stderr, "1 of 1 hosts silent") {
		t.Errorf("after SIGKILL: exit %d, want %d\n%s\n%s", r.code, exitSilent, r.stdout, r.stderr)
	}
	if r := ro.run(nil, "fleet", "--repo", bucketURL, "--stale", "-1s"); r.code != exitUsage {
		t.Errorf("negative --stale: exit %d, want %d", r.code, exitUsage)
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/heartbeat"
)

func TestStale(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		last, started time.Time
		fresh         string
		want          bool
		says          string
	}{
		{now.Add(-time.Hour), now.Add(-48 * time.Hour), "2h0m0s", false, "yes (last good 1h00m ago, target 2h00m)"},
		{now.Add(-3 * time.Hour), now.Add(-48 * time.Hour), "2h0m0s", true, "STALE: last good 3h00m ago"},
		{time.Time{}, now.Add(-time.Hour), "2h0m0s", false, "waiting for the first backup"},
		{time.Time{}, now.Add(-3 * time.Hour), "2h0m0s", true, "STALE: no good backup in the 3h00m since the agent started"},
		{now.Add(-300 * time.Hour), now.Add(-48 * time.Hour), "", false, "no target"},
	} {
		got, _ := stale(tc.last, tc.fresh, tc.started, now)
		says := freshness(tc.last, tc.fresh, tc.started, now)
		if got != tc.want || !strings.HasPrefix(says, tc.says) {
			t.Errorf("stale(%v, %q) = %v %q; want %v %q", tc.last, tc.fresh, got, says, tc.want, tc.says)
		}
	}
}

// escrow status reads what the agent wrote into its state directory: a
// database past its target freshness and a heartbeat that cannot be written
// are problems (exit 4); the doctor's verdict and the kit are reported.
func TestStatusFreshnessVerdictAndKit(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	st := &agent.Status{
		PID: 1, Version: "escrow test", Started: now.Add(-10 * time.Hour), Updated: now, Host: "web1", HostID: "web1-0123456789ab",
		Sources: []agent.SourceStatus{{Path: "/var/www/site", FreshWithin: "12h0m0s", Verified: now.Add(-time.Hour), Watching: true}},
		Jobs: []agent.JobStatus{{Name: "database shop", Every: "1h0m0s", FreshWithin: "2h0m0s",
			LastSuccess: now.Add(-5 * time.Hour), LastError: "mysqldump: access denied", LastErrorTime: now}},
		LastHeartbeat: now.Add(-20 * time.Minute), HeartbeatError: "save escrow/heartbeats/web1-012: access denied",
	}
	if err := agent.WriteStatus(dir, st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, heartbeat.DoctorFile), []byte(`{"time":"2026-11-20T10:00:00Z","verdict":"no object lock","tamper_proof":false}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, "/nonexistent")
	r := c.run(nil, "status", "--state-dir", dir, "--json")
	var out struct {
		Problems     []string           `json:"problems"`
		Warnings     []string           `json:"warnings"`
		Escrow       *heartbeat.Verdict `json:"escrow"`
		KitConfirmed bool               `json:"kit_confirmed"`
		Version      string             `json:"version"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != exitUnhealthy {
		t.Fatalf("exit %d, %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
	}
	all := strings.Join(out.Problems, "\n")
	for _, want := range []string{"database shop: STALE: last good 5h", "heartbeat", "access denied", "the agent is not running", "recovery kit"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "/var/www/site: STALE") {
		t.Errorf("a fresh source is reported stale:\n%s", all)
	}
	if out.Escrow == nil || out.Escrow.TamperProof || out.KitConfirmed || !strings.HasPrefix(out.Version, "escrow ") ||
		len(out.Warnings) != 1 || !strings.Contains(out.Warnings[0], "not tamper-proof") {
		t.Errorf("escrow %+v, kit %v, version %q, warnings %q", out.Escrow, out.KitConfirmed, out.Version, out.Warnings)
	}

	r = c.run(nil, "status", "--state-dir", dir)
	for _, want := range []string{"fresh:     yes", "fresh:     STALE", "escrow:      NOT TAMPER-PROOF: no object lock", "kit:         NOT CONFIRMED", "heartbeat:   FAILING"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text status lacks %q:\n%s", want, r.stdout)
		}
	}
}

package metrics_test

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/metrics"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

// scrape GETs /metrics and returns each sample line's value by its name
// and labels as printed.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// A running agent's figures, scraped over HTTP: the status gauges, the
// snapshot and dump figures, the watcher's events and the store requests.
func TestScrapeAgent(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := metrics.New()
	be, err := local.Create(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, m.Backend(be), "pw", repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails := true
	a, err := agent.New(r, agent.Options{
		Sources: []agent.Source{{Path: src, Watch: true}}, Host: "metrics-test",
		Jobs: []agent.Job{{Name: "database shop", Every: 100 * time.Millisecond, Run: func(context.Context) (agent.JobResult, error) {
			if fails {
				fails = false
				return agent.JobResult{}, errors.New("refused")
			}
			return agent.JobResult{Bytes: 4096}, nil
		}}},
		QuietPeriod: 100 * time.Millisecond, RescanEvery: time.Hour, StateDir: filepath.Join(t.TempDir(), "state"),
		HeartbeatEvery: time.Hour, Observer: m, Logger: slog.New(slog.DiscardHandler),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Watch(a.Status)
	addr, wait, err := m.Serve(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done; wait() }()

	src1 := `source="` + src + `"`
	want := func(what string, ok func(map[string]float64) bool) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := scrape(t, addr)
			if ok(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s in the scrape:\n%v", what, got)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	got := want("first snapshot and dump", func(g map[string]float64) bool {
		return g[`escrow_snapshots_total{kind="rescan",`+src1+`}`] == 1 && g[`escrow_dump_size_bytes{database="database shop"}`] == 4096
	})
	for name, check := range map[string]func(float64) bool{
		`escrow_source_last_success_timestamp_seconds{` + src1 + `}`:   func(v float64) bool { return v > 1e9 },
		`escrow_source_read_bytes_total{` + src1 + `}`:                 func(v float64) bool { return v == 5 },
		`escrow_source_files_changed_total{change="new",` + src1 + `}`: func(v float64) bool { return v == 1 },
		`escrow_dump_failures_total{database="database shop"}`:         func(v float64) bool { return v == 1 },
		`escrow_dump_duration_seconds_count{database="database shop"}`: func(v float64) bool { return v >= 1 },
		`escrow_store_requests_total{op="save"}`:                       func(v float64) bool { return v >= 3 },
		`escrow_store_uploaded_bytes_total`:                            func(v float64) bool { return v > 0 },
		`escrow_watcher_watching{` + src1 + `}`:                        func(v float64) bool { return v == 1 },
		`escrow_watcher_missed_total{` + src1 + `}`:                    func(v float64) bool { return v == 0 },
		`escrow_source_pending_dirs{` + src1 + `}`:                     func(v float64) bool { return v == 0 },
	} {
		if v, ok := got[name]; !ok || !check(v) {
			t.Errorf("%s = %v (present %v)", name, v, ok)
		}
	}

	// A change is a watcher event and an incremental snapshot.
	if err := os.WriteFile(filepath.Join(src, "b.txt"), []byte("world"), 0o600); err != nil {
		t.Fatal(err)
	}
	want("the change", func(g map[string]float64) bool {
		return g[`escrow_watcher_events_total{`+src1+`}`] >= 1 && g[`escrow_snapshots_total{kind="incremental",`+src1+`}`] == 1
	})
}

func TestServeRefusesABusyPort(t *testing.T) {
	m := metrics.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, wait, err := m.Serve(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); wait() }()
	if _, _, err := metrics.New().Serve(ctx, addr, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "metrics_listen") {
		t.Errorf("second Serve on %s: %v", addr, err)
	}
}

//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/notify"
)

// escrow agent with metrics_listen and a webhook: /metrics answers on
// loopback for a port-only address, with the agent's and the store's
// figures; the unconfirmed recovery kit is alerted through the webhook.
func TestAgentMetricsAndAlerts(t *testing.T) {
	s := newAgentSetup(t)
	var mu sync.Mutex
	var events []notify.Event
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e notify.Event
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &e)
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}))
	defer hook.Close()
	urlFile := filepath.Join(t.TempDir(), "webhook.url")
	if err := os.WriteFile(urlFile, []byte(hook.URL+"/T0KEN\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cfg, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.writeConfig(t, string(cfg)+fmt.Sprintf("metrics_listen: \":%d\"\nnotify:\n  webhooks:\n    - url_file: %s\n", port, urlFile))
	p := s.start(t)
	s.settled(t, p)

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatalf("scrape: %v\n%s", err, p.logText())
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`escrow_source_last_success_timestamp_seconds{source="` + s.src + `"}`,
		`escrow_snapshots_total{kind="rescan",source="` + s.src + `"} 1`,
		`escrow_store_requests_total{op="save"}`,
		`escrow_heartbeat_last_timestamp_seconds`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		var kit bool
		for _, e := range events {
			kit = kit || e.Kind == notify.KitUnconfirmed
		}
		mu.Unlock()
		if kit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no kit alert among %d events\n%s", n, p.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if log := p.logText(); strings.Contains(log, "T0KEN") || !strings.Contains(log, "metrics endpoint listening") {
		t.Errorf("agent log:\n%s", log)
	}
}

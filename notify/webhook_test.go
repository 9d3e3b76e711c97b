package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is a local HTTP endpoint that records what it is sent.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []request
	status int
}

type request struct {
	path, ctype string
	body        []byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{status: http.StatusOK}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.got = append(r.got, request{req.URL.Path, req.Header.Get("Content-Type"), body})
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.got...)
}

func TestWebhookJSON(t *testing.T) {
	rc := newReceiver(t)
	w, err := NewWebhook(rc.URL+"/hooks/T0KEN", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e := Event{Kind: BackupFailed, Subject: "/var/www/site", Host: "web1", Time: time.Now(), Message: "open x: permission denied"}
	if err := w.Send(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	got := rc.requests()
	if len(got) != 1 || got[0].path != "/hooks/T0KEN" || got[0].ctype != "application/json" {
		t.Fatalf("requests %+v", got)
	}
	var body map[string]any
	if err := json.Unmarshal(got[0].body, &body); err != nil {
		t.Fatal(err)
	}
	text, _ := body["text"].(string)
	if !strings.Contains(text, "web1: backup_failed /var/www/site") || !strings.Contains(text, "permission denied") ||
		body["content"] != text || body["kind"] != "backup_failed" || body["recovered"] != false {
		t.Errorf("body %s", got[0].body)
	}

	// A refusal names the host and status, never the URL's token.
	rc.status = http.StatusNotFound
	err = w.Send(context.Background(), e)
	if err == nil || !strings.Contains(err.Error(), "404") || strings.Contains(err.Error(), "T0KEN") || strings.Contains(w.Name(), "T0KEN") {
		t.Errorf("err = %v, name %s", err, w.Name())
	}
	// So does an unreachable one.
	rc.Close()
	err = w.Send(context.Background(), e)
	if err == nil || strings.Contains(err.Error(), "T0KEN") || !strings.Contains(err.Error(), "url_file") {
		t.Errorf("unreachable: err = %v", err)
	}
}

func TestWebhookPing(t *testing.T) {
	rc := newReceiver(t)
	w, err := NewWebhook(rc.URL+"/ping/uuid", StylePing, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Event{{Kind: Stale, Subject: "db"}, {Kind: Stale, Subject: "db", Recovered: true}, {Kind: Test}} {
		if err := w.Send(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	got := rc.requests()
	if len(got) != 3 || got[0].path != "/ping/uuid/fail" || got[1].path != "/ping/uuid" || got[2].path != "/ping/uuid" {
		t.Errorf("paths %+v", got)
	}
}

func TestWebhookRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct{ url, style string }{{"ftp://x/T0KEN", ""}, {"not a url T0KEN", ""}, {"https://x/", "carrier pigeon"}} {
		_, err := NewWebhook(tc.url, tc.style, nil)
		if err == nil || strings.Contains(err.Error(), "T0KEN") {
			t.Errorf("NewWebhook(%q, %q) = %v", tc.url, tc.style, err)
		}
	}
}

// Problems are sent when they start and again after RepeatAfter, never
// more often; a recovery notice follows only a problem that was sent.
func TestNotifierRateLimitsAndRecovers(t *testing.T) {
	rc := newReceiver(t)
	w, err := NewWebhook(rc.URL, StyleJSON, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	n := New([]Sender{w}, Options{Host: "web1", RepeatAfter: time.Hour, Now: func() time.Time { return now }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()

	n.Problem(BackupFailed, "/a", "first")
	n.Problem(BackupFailed, "/a", "again at once: dropped")
	n.Problem(BackupFailed, "/b", "another subject")
	n.Problem(DumpFailed, "/a", "another kind")
	now = now.Add(61 * time.Minute)
	n.Problem(BackupFailed, "/a", "an hour later: sent")
	n.Resolved(BackupFailed, "/a", "fixed")
	n.Resolved(BackupFailed, "/a", "fixed twice: nothing")
	n.Resolved(Stale, "/c", "never failed: nothing")
	cancel()
	<-done // Run sends what is queued before it returns

	var msgs []string
	for _, r := range rc.requests() {
		var e Event
		if err := json.Unmarshal(r.body, &e); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, e.Message)
	}
	want := []string{"first", "another subject", "another kind", "an hour later: sent", "fixed"}
	if strings.Join(msgs, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q, want %q", msgs, want)
	}
}

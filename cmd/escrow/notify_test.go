package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// escrow notify test sends through every channel and names the one that
// failed, without its URL's token; a configuration without channels is a
// usage error.
func TestNotifyTestCommand(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, r.URL.Path+" "+string(b))
		mu.Unlock()
		if strings.Contains(r.URL.Path, "gone") {
			w.WriteHeader(http.StatusGone)
		}
	}))
	defer srv.Close()

	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	site := filepath.Join(dir, "site")
	if err := os.Mkdir(site, 0o700); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("repository: %s/repo\npassword_file: %s\nhost: web1\nsources:\n  - path: %s\nstate_dir: %s/state\n",
		dir, write("password", "pw\n"), site, dir)
	good := write("good.url", srv.URL+"/hooks/G00DT0KEN\n")
	gone := write("gone.url", srv.URL+"/hooks/gone/S3CRETT0KEN\n")
	cfg := write("escrow.yaml", base+fmt.Sprintf("notify:\n  webhooks:\n    - url_file: %s\n    - url_file: %s\n      style: ping\n", good, gone))
	c := newCLI(t, "")

	r := c.run(nil, "notify", "test", "--config", cfg)
	out := r.stdout + r.stderr
	if r.code != exitFailure || !strings.Contains(r.stdout, "sent    webhook http://127.0.0.1") || !strings.Contains(r.stdout, "FAILED  webhook") ||
		!strings.Contains(out, "410") || strings.Contains(out, "T0KEN") {
		t.Errorf("exit %d\n%s", r.code, out)
	}
	mu.Lock()
	if len(bodies) != 2 || !strings.Contains(bodies[0], `"kind":"test"`) || !strings.Contains(bodies[0], "web1") || !strings.HasPrefix(bodies[1], "/hooks/gone/S3CRETT0KEN ") {
		t.Errorf("received %q", bodies)
	}
	mu.Unlock()

	none := write("none.yaml", base)
	if r := c.run(nil, "notify", "test", "--config", none); r.code != exitUsage || !strings.Contains(r.stderr, "sends no alerts") {
		t.Errorf("no channels: exit %d\n%s", r.code, r.stderr)
	}
}

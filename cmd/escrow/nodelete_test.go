//go:build unix

package main

import (
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/internal/s3proxy"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// TestBackingUpNeverDeletes runs everything the host does through a
// recording proxy in front of MinIO: init, backups (one interrupted in the
// middle of an upload), a database dump, and the agent taking several
// snapshots and running its database job before it stops. The proxy must
// see no DELETE at all, because the host's credentials may only put, get
// and list; and every object upload must carry Content-MD5, which Object
// Lock buckets require. The owner's `escrow unlock` then shows the proxy
// does see deletes.
func TestBackingUpNeverDeletes(t *testing.T) {
	sqlite := testenv.RequireBinary(t, "sqlite3")
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	proxy, via := s3proxy.Front(t, srv)

	s := newAgentSetupOn(t, via, bucket) // escrow init, through the proxy
	dbFile := filepath.Join(t.TempDir(), "app.sqlite")
	if out, err := exec.Command(sqlite, dbFile, "CREATE TABLE posts(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO posts(body) VALUES ('first'), ('second');").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}

	// Backups by hand, one of them stopped while it uploads.
	s.c.ok("backup", s.src)
	writeRandom(t, filepath.Join(s.src, "wp-content/uploads/big.bin"), 48<<20, 1)
	before := countPuts(proxy, "/data/")
	cmd := exec.Command(escrowBin, "--pack-size", "1", "backup", s.src)
	cmd.Env = s.c.env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for countPuts(proxy, "/data/") == before && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGINT) // cancels the backup's context
	err := cmd.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != exitInterrupted {
		t.Errorf("the backup stopped mid-upload exited %d (%v), want %d (interrupted)", code, err, exitInterrupted)
	}
	t.Logf("interrupted after %d pack uploads", countPuts(proxy, "/data/")-before)
	s.c.ok("backup", s.src)
	s.c.ok("db", "dump", "--type", "sqlite", "--path", dbFile, "--name", "app")

	// The agent: snapshots of changes, and a database job.
	text, err := os.ReadFile(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.writeConfig(t, string(text)+fmt.Sprintf("databases:\n  - type: sqlite\n    path: %s\n    every: 1h\n", dbFile))
	p := s.start(t)
	s.waitFor(t, p, "the first snapshot", func(st agent.SourceStatus) bool { return st.LastSnapshot != nil })
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(s.src, fmt.Sprintf("wp-content/post-%d.html", i)), []byte(strings.Repeat("<p>news</p>", 100+i)), 0o644); err != nil {
			t.Fatal(err)
		}
		s.settled(t, p)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("agent exit: %v\n%s", err, p.logText())
	}
	if log := p.logText(); !strings.Contains(log, `"job done"`) {
		t.Errorf("the agent's database job did not run:\n%s", log)
	}
	s.requireLatestIsTree(t, "the agent's snapshots")
	if n := len(s.c.snapshots()); n < 7 {
		t.Errorf("%d snapshots, want at least 7 (3 backups, a dump, the agent's rescan, 3 changes and its dump)", n)
	}
	s.c.ok("check")

	counts := proxy.Counts()
	t.Logf("requests through the proxy from the backing-up side: %s", proxy.Summary())
	if n := counts[http.MethodDelete]; n != 0 {
		for _, r := range proxy.Requests() {
			if r.Method == http.MethodDelete {
				t.Errorf("DELETE %s", r.Path)
			}
		}
		t.Fatalf("the backing-up side sent %d DELETE requests, want none", n)
	}
	var lockPuts, releasePuts, lockLists int
	for _, r := range proxy.Requests() {
		switch {
		case r.Method == http.MethodPut && strings.Contains(r.Path, "/locks/"):
			lockPuts++
		case r.Method == http.MethodPut && strings.Contains(r.Path, "/escrow/released/"):
			releasePuts++
		case r.Method == http.MethodGet && strings.Contains(r.Query, "prefix=site%2Flocks%2F"):
			lockLists++
		}
	}
	t.Logf("locking cost: %d lock files, %d release records, %d listings of locks/", lockPuts, releasePuts, lockLists)
	puts := 0
	for _, r := range proxy.Requests() {
		if r.Method == http.MethodPut && strings.Count(r.Path, "/") > 1 {
			puts++
			if !r.ContentMD5 && !r.Checksum {
				t.Errorf("upload without Content-MD5 or checksum: %s", r)
			}
		}
	}
	if puts < 20 {
		t.Errorf("only %d uploads seen: the proxy was not in the path", puts)
	}

	// The owner's cleanup deletes, and the proxy sees it.
	s.c.ok("unlock")
	if n := proxy.Counts()[http.MethodDelete]; n == 0 {
		t.Errorf("escrow unlock sent no DELETE through the proxy")
	}
	s.resticCheck(t, "check")
}

func countPuts(p *s3proxy.Proxy, part string) int {
	n := 0
	for _, r := range p.Requests() {
		if r.Method == http.MethodPut && strings.Contains(r.Path, part) {
			n++
		}
	}
	return n
}

func writeRandom(t *testing.T, name string, size int, seed int64) {
	t.Helper()
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

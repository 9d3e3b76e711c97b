package agent_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

var fastKDF = repo.KDFParams{N: 1024, R: 8, P: 1}

const password = "agent test password"

type harness struct {
	t      *testing.T
	r      *repo.Repository
	a      *agent.Agent
	src    string
	cancel context.CancelFunc
	done   chan error
}

func TestMain(m *testing.M) { testenv.Main(m) }

// newRepo makes a repository in a local directory.
func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	be, err := local.Create(context.Background(), filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	return initRepo(t, be)
}

// newS3Repo makes a repository in a new bucket of the test MinIO server.
func newS3Repo(t *testing.T) *repo.Repository {
	t.Helper()
	srv := testenv.MinIO(t)
	be, err := s3.Create(context.Background(), s3.Config{
		Endpoint: srv.Endpoint, UseHTTPS: srv.Secure, Bucket: srv.NewBucket(t), Prefix: "site",
		KeyID: srv.AccessKey, Secret: srv.SecretKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	return initRepo(t, be)
}

func initRepo(t *testing.T, be remote.Backend) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), be, password, repo.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start runs an agent on src with short timings.
func start(t *testing.T, r *repo.Repository, src Source) *harness {
	t.Helper()
	a, err := agent.New(r, agent.Options{
		Sources:     []agent.Source{agent.Source(src)},
		Host:        "agent-test",
		QuietPeriod: 150 * time.Millisecond,
		MaxDelay:    time.Second,
		RescanEvery: time.Hour,
		StateDir:    filepath.Join(t.TempDir(), "state"),
		Logger:      testLogger(t),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, r: r, a: a, src: src.Path, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- a.Run(ctx) }()
	t.Cleanup(h.stop)
	h.waitFor("the first rescan", func(st agent.SourceStatus) bool { return st.LastRescan != nil })
	return h
}

// Source mirrors agent.Source for brevity in tests.
type Source agent.Source

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("agent: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("agent did not stop within 30 s")
	}
}

func (h *harness) waitFor(what string, ok func(agent.SourceStatus) bool) agent.SourceStatus {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-h.done:
			h.t.Fatalf("agent stopped while waiting for %s: %v", what, err)
		default:
		}
		st := h.a.Status().Sources[0]
		if ok(st) {
			return st
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s; status %+v", what, h.a.Status().Sources[0])
	return agent.SourceStatus{}
}

// settle waits until every change made before the call is in a snapshot.
func (h *harness) settle() agent.SourceStatus {
	h.t.Helper()
	time.Sleep(50 * time.Millisecond) // let the events arrive
	after := time.Now()
	return h.waitFor("changes to settle", func(st agent.SourceStatus) bool {
		return st.PendingSince.IsZero() && st.Verified.After(after) && st.LastError == ""
	})
}

// latest returns the newest snapshot in the repository.
func (h *harness) latest() *repo.Snapshot {
	h.t.Helper()
	snaps, err := h.r.Snapshots(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	sn, err := repo.FindSnapshot(snaps, "latest", repo.SnapshotFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return sn
}

// snapshotTree describes the source as the snapshot holds it: one line per
// entry below the source, with content digests.
func (h *harness) snapshotTree(sn *repo.Snapshot) []string {
	h.t.Helper()
	ctx := context.Background()
	n, err := h.r.FindNode(ctx, sn, h.src)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	err = h.r.Walk(ctx, *n.Subtree, "", func(p string, n *repo.Node) error {
		switch n.Type {
		case repo.NodeFile:
			sum := sha256.New()
			for _, id := range n.Content {
				data, err := h.r.LoadBlob(ctx, repo.BlobHandle{ID: id, Type: repo.DataBlob}, nil)
				if err != nil {
					return err
				}
				sum.Write(data)
			}
			out = append(out, fmt.Sprintf("file %s %d %s", p, n.Size, hex.EncodeToString(sum.Sum(nil))[:12]))
		case repo.NodeSymlink:
			out = append(out, fmt.Sprintf("link %s -> %s", p, n.LinkTarget))
		default:
			out = append(out, fmt.Sprintf("%s %s", n.Type, p))
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// diskTree describes the source as it is on disk, in snapshotTree's form.
func diskTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel := "/" + filepath.ToSlash(strings.TrimPrefix(p, root+"/"))
		switch {
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			out = append(out, fmt.Sprintf("file %s %d %s", rel, len(data), hex.EncodeToString(sum[:])[:12]))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("link %s -> %s", rel, target))
		case d.IsDir():
			out = append(out, "dir "+rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func (h *harness) requireSnapshotMatchesDisk(step string) {
	h.t.Helper()
	got := h.snapshotTree(h.latest())
	want := diskTree(h.t, h.src)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		h.t.Fatalf("after %s, the latest snapshot differs from the tree:\nsnapshot:\n  %s\ndisk:\n  %s",
			step, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestAgentFollowsScriptedChanges(t *testing.T) {
	t.Run("local", func(t *testing.T) { testScriptedChanges(t, newRepo(t)) })
	t.Run("s3", func(t *testing.T) { testScriptedChanges(t, newS3Repo(t)) })
}

func testScriptedChanges(t *testing.T, r *repo.Repository) {
	base := t.TempDir()
	src := filepath.Join(base, "site")
	outside := filepath.Join(base, "outside")
	writeFile(t, filepath.Join(src, "index.php"), "<?php echo 'hello';")
	writeFile(t, filepath.Join(src, "wp-content/uploads/2026/11/a.jpg"), "jpeg bytes")
	writeFile(t, filepath.Join(src, "wp-content/themes/t/style.css"), "body{}")

	h := start(t, r, Source{Path: src, Watch: true})
	h.requireSnapshotMatchesDisk("the first rescan")

	steps := []struct {
		name string
		do   func()
	}{
		{"create a file", func() { writeFile(t, filepath.Join(src, "new.txt"), "new") }},
		{"modify a deep file", func() { writeFile(t, filepath.Join(src, "wp-content/uploads/2026/11/a.jpg"), "other jpeg bytes") }},
		{"delete a file", func() { must(t, os.Remove(filepath.Join(src, "new.txt"))) }},
		{"rename a file", func() {
			must(t, os.Rename(filepath.Join(src, "index.php"), filepath.Join(src, "home.php")))
		}},
		{"make a deep tree", func() {
			for i := range 5 {
				writeFile(t, filepath.Join(src, "deep/a/b/c/d", fmt.Sprintf("f%d", i)), strings.Repeat("x", i))
			}
		}},
		{"move a directory in from outside", func() {
			writeFile(t, filepath.Join(outside, "plugin/main.php"), "<?php // plugin")
			writeFile(t, filepath.Join(outside, "plugin/lib/util.php"), "<?php // util")
			must(t, os.Rename(filepath.Join(outside, "plugin"), filepath.Join(src, "wp-content/plugin")))
		}},
		{"write into the moved-in directory", func() {
			writeFile(t, filepath.Join(src, "wp-content/plugin/lib/more.php"), "<?php // more")
		}},
		{"move a directory within the tree", func() {
			must(t, os.Rename(filepath.Join(src, "deep/a"), filepath.Join(src, "moved")))
		}},
		{"write below the moved directory", func() {
			writeFile(t, filepath.Join(src, "moved/b/c/d/f9"), "nine")
		}},
		{"delete a directory and recreate it", func() {
			must(t, os.RemoveAll(filepath.Join(src, "wp-content/themes")))
			writeFile(t, filepath.Join(src, "wp-content/themes/t2/style.css"), "body{color:red}")
		}},
		{"move a directory out of the tree", func() {
			must(t, os.Rename(filepath.Join(src, "wp-content/plugin"), filepath.Join(outside, "plugin-back")))
		}},
		{"write in the moved-out directory", func() {
			writeFile(t, filepath.Join(outside, "plugin-back/ignored.php"), "not ours")
		}},
		{"symlink and chmod", func() {
			must(t, os.Symlink("home.php", filepath.Join(src, "index.php")))
			must(t, os.Chmod(filepath.Join(src, "home.php"), 0o600))
		}},
	}
	// Steps that change nothing below the source save no snapshot.
	noChange := map[string]bool{"write in the moved-out directory": true}
	for _, s := range steps {
		t.Logf("step: %s", s.name)
		s.do()
		if noChange[s.name] {
			time.Sleep(500 * time.Millisecond)
			h.waitFor("no pending changes", func(st agent.SourceStatus) bool { return st.PendingSince.IsZero() })
		} else {
			h.settle()
		}
		h.requireSnapshotMatchesDisk(s.name)
	}

	// The incremental snapshots were complete: a full rescan finds nothing.
	before := h.a.Status().Sources[0].LastRescan.Time
	h.a.Rescan()
	st := h.waitFor("the requested rescan", func(st agent.SourceStatus) bool {
		return st.LastRescan != nil && st.LastRescan.Time.After(before)
	})
	if st.LastRescan.Changes != 0 || st.MissedTotal != 0 {
		t.Errorf("rescan after the script found %d changes, %d missed; want 0", st.LastRescan.Changes, st.MissedTotal)
	}
}

func TestAgentRescanCountsWhatWatchingMissed(t *testing.T) {
	r := newRepo(t)
	src := filepath.Join(t.TempDir(), "site")
	writeFile(t, filepath.Join(src, "a.txt"), "a")
	// Without watching, every change is one a watcher would have missed:
	// the count must see them. (The count is kept for watched sources;
	// here the rescan reports changes but no misses.)
	h := start(t, r, Source{Path: src, Watch: false})
	writeFile(t, filepath.Join(src, "b.txt"), "b")
	before := h.a.Status().Sources[0].LastRescan.Time
	h.a.Rescan()
	st := h.waitFor("the requested rescan", func(st agent.SourceStatus) bool {
		return st.LastRescan != nil && st.LastRescan.Time.After(before)
	})
	if st.LastRescan.Changes != 1 {
		t.Errorf("rescan changes = %d, want 1 (b.txt)", st.LastRescan.Changes)
	}
	if st.Watching || st.WatchProblem == "" {
		t.Errorf("unwatched source: watching=%v problem=%q", st.Watching, st.WatchProblem)
	}
	h.requireSnapshotMatchesDisk("the rescan")
}

func TestAgentRunsJobsOnSchedule(t *testing.T) {
	r := newRepo(t)
	var calls atomic.Int32
	a, err := agent.New(r, agent.Options{
		Jobs: []agent.Job{{Name: "dump", Every: 300 * time.Millisecond, Run: func(ctx context.Context) (agent.JobResult, error) {
			if calls.Add(1) == 1 {
				return agent.JobResult{}, errors.New("dump failed: server down")
			}
			return agent.JobResult{Snapshots: []string{"abc"}, Bytes: 42}, nil
		}}},
		StateDir: filepath.Join(t.TempDir(), "state"), Logger: testLogger(t),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	wait := func(what string, ok func(agent.JobStatus) bool) agent.JobStatus {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if st := a.Status().Jobs[0]; ok(st) {
				return st
			}
		}
		t.Fatalf("timed out waiting for %s: %+v", what, a.Status().Jobs[0])
		return agent.JobStatus{}
	}
	st := wait("the failure", func(st agent.JobStatus) bool { return st.Failures == 1 })
	if st.LastError != "dump failed: server down" || !st.LastSuccess.IsZero() {
		t.Errorf("after a failure: %+v", st)
	}
	st = wait("the retry", func(st agent.JobStatus) bool { return !st.LastSuccess.IsZero() })
	if st.Failures != 0 || st.LastError != "" || st.LastBytes != 42 || len(st.LastSnapshots) != 1 {
		t.Errorf("after a success: %+v", st)
	}
	// And again on its period.
	wait("the next turn", func(agent.JobStatus) bool { return calls.Load() >= 4 })
}

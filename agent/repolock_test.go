package agent_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/check"
	"github.com/escrow-backup/escrow/internal/s3proxy"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAgentGivesWayToPrune: an idle agent holding its lifetime shared lock
// releases it when an exclusive lock (prune, with the owner's credentials,
// through another handle) appears; takes no snapshot while it is held;
// and afterwards locks again and reloads the index and its parents. The
// "prune" deletes every snapshot, index and pack: had the agent kept its
// old index, its next snapshot would reference deleted data and check
// would fail.
func TestAgentGivesWayToPrune(t *testing.T) {
	srv := testenv.MinIO(t)
	cfg := s3.Config{
		Endpoint: srv.Endpoint, UseHTTPS: srv.Secure, Bucket: srv.NewBucket(t), Prefix: "site",
		KeyID: srv.AccessKey, Secret: srv.SecretKey,
	}
	ctx := context.Background()
	// The agent reaches MinIO through a recording proxy; "prune" directly.
	proxy, via := s3proxy.Front(t, srv)
	acfg := cfg
	acfg.Endpoint, acfg.UseHTTPS = via.Endpoint, via.Secure
	be, err := s3.Create(ctx, acfg)
	if err != nil {
		t.Fatal(err)
	}
	r := initRepo(t, be)
	open := func(lo repo.LockOptions) (*repo.Repository, remote.Backend) {
		t.Helper()
		be, err := s3.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		r, err := repo.Open(ctx, be, password, repo.Options{KDF: fastKDF, Locks: lo})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r, be
	}

	src := t.TempDir()
	writeFile(t, filepath.Join(src, "index.php"), "<?php echo 1;")
	writeFile(t, filepath.Join(src, "wp-content/a.txt"), strings.Repeat("a", 5000))
	logs := &syncBuffer{}
	a, err := agent.New(r, agent.Options{
		Sources:     []agent.Source{{Path: src, Watch: true}},
		Host:        "agent-test",
		QuietPeriod: 150 * time.Millisecond, MaxDelay: time.Second, RescanEvery: time.Hour,
		LockPoll:    100 * time.Millisecond,
		StateDir:    filepath.Join(t.TempDir(), "state"),
		Logger:      slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug})),
		CPUPriority: agent.PriorityNormal, IOPriority: agent.PriorityNormal,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	h := &harness{t: t, r: r, a: a, src: src, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- a.Run(runCtx) }()
	t.Cleanup(h.stop)
	h.waitFor("the first rescan", func(st agent.SourceStatus) bool { return st.LastSnapshot != nil })

	prune, pbe := open(repo.LockOptions{Poll: 100 * time.Millisecond})
	start := time.Now()
	ex, err := prune.LockExclusive(ctx, 20*time.Second)
	if err != nil {
		t.Fatalf("LockExclusive with an idle agent: %v", err)
	}
	t.Logf("the idle agent gave way after %v", time.Since(start))
	first := a.Status().Sources[0].LastSnapshot.ID

	// "Prune" everything, and change the site while the lock is held.
	for _, ft := range []remote.FileType{remote.SnapshotFile, remote.IndexFile, remote.PackFile} {
		var names []string
		must(t, pbe.List(ctx, ft, func(fi remote.FileInfo) error { names = append(names, fi.Name); return nil }))
		for _, n := range names {
			must(t, pbe.Remove(ctx, remote.Handle{Type: ft, Name: n}))
		}
	}
	writeFile(t, filepath.Join(src, "wp-content/b.txt"), "written during the prune")
	time.Sleep(1500 * time.Millisecond)
	if st := a.Status().Sources[0]; st.LastSnapshot.ID != first {
		t.Fatalf("the agent saved snapshot %s while an exclusive lock was held", st.LastSnapshot.ID)
	}
	if ids, err := prune.List(ctx, remote.SnapshotFile); err != nil || len(ids) != 0 {
		t.Fatalf("snapshots during the exclusive lock: %v, %v", ids, err)
	}
	must(t, ex.Unlock(ctx))

	st := h.waitFor("a snapshot after the prune", func(st agent.SourceStatus) bool {
		return st.LastSnapshot != nil && st.LastSnapshot.ID != first && st.PendingSince.IsZero()
	})
	if st.LastRescan == nil || st.LastRescan.Reason != "parent snapshot removed" {
		t.Errorf("after its parent was pruned the agent did not read everything: %+v", st.LastRescan)
	}
	h.requireSnapshotMatchesDisk("the prune")
	fresh, _ := open(repo.LockOptions{})
	rep, err := check.Run(ctx, fresh, check.Options{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("check after the agent resumed: %+v (it deduplicated against pruned data)", rep.Problems)
	}
	if n := strings.Count(logs.String(), "waiting for an exclusive lock"); n != 1 {
		t.Errorf("the wait was logged %d times, want once", n)
	}
	h.stop()
	t.Logf("the agent's requests: %s", proxy.Summary())
	if n := proxy.Counts()["DELETE"]; n != 0 {
		t.Errorf("the agent sent %d DELETE requests while giving way to prune, want none", n)
	}
}

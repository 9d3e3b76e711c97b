//go:build unix

package database_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/restore"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, "pw", repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func snapshotCount(t *testing.T, r *repo.Repository) int {
	t.Helper()
	snaps, err := r.Snapshots(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(snaps)
}

// dump runs Dump and requires success.
func dump(t *testing.T, r *repo.Repository, spec database.Spec, opts database.Options) []database.Result {
	t.Helper()
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	res, err := database.Dump(context.Background(), r, spec, opts)
	if err != nil {
		t.Fatalf("dump %s: %v", spec, err)
	}
	for _, x := range res {
		if x.Snapshot == nil || x.Err != nil {
			t.Fatalf("dump %s: result %+v", spec, x)
		}
	}
	return res
}

// dumpFails runs Dump, requires it to fail with a message containing each
// of want, and requires that no snapshot was saved.
func dumpFails(t *testing.T, r *repo.Repository, spec database.Spec, opts database.Options, want ...string) error {
	t.Helper()
	before := snapshotCount(t, r)
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	res, err := database.Dump(context.Background(), r, spec, opts)
	if err == nil {
		t.Fatalf("dump %s succeeded: %+v", spec, res)
	}
	t.Logf("error: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if strings.Contains(err.Error(), testenv.TestDBPassword) {
		t.Errorf("error shows the password: %v", err)
	}
	for _, x := range res {
		if x.Err != nil && x.Snapshot != nil {
			t.Errorf("failed result has a snapshot: %+v", x)
		}
	}
	if n := snapshotCount(t, r); n != before {
		t.Fatalf("a failed dump saved a snapshot: %d snapshots, had %d", n, before)
	}
	return err
}

// readDump returns a reader of the dump file in sn; reading it fails if the
// repository read fails.
func readDump(t *testing.T, r *repo.Repository, sn *repo.Snapshot, path string) io.Reader {
	t.Helper()
	node, err := r.FindNode(context.Background(), sn, path)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		pw.CloseWithError(restore.Dump(context.Background(), r, node, pw))
	}()
	t.Cleanup(func() {
		pr.Close()
		<-done
	})
	return pr
}

func dumpText(t *testing.T, r *repo.Repository, sn *repo.Snapshot, path string) string {
	t.Helper()
	data, err := io.ReadAll(readDump(t, r, sn, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func hasTags(t *testing.T, sn *repo.Snapshot, tags ...string) {
	t.Helper()
	for _, tag := range tags {
		if !sn.HasTag(tag) {
			t.Errorf("snapshot tags %v lack %q", sn.Tags, tag)
		}
	}
}

// pathWithout returns a PATH of links to every program of the current
// PATH except those named.
func pathWithout(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	skip := map[string]bool{}
	for _, n := range names {
		skip[n] = true
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if skip[e.Name()] {
				continue
			}
			_ = os.Symlink(filepath.Join(d, e.Name()), filepath.Join(dir, e.Name())) // first one wins, as in PATH
		}
	}
	return dir
}

// envWithPath is the test's environment with PATH replaced.
func envWithPath(path string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return append(env, "PATH="+path)
}

// fakeTool puts an executable script called name first in PATH.
func fakeTool(t *testing.T, name, script string) []string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return envWithPath(dir + string(filepath.ListSeparator) + os.Getenv("PATH"))
}

// pairWriter feeds a database client transactions that each insert two
// rows, until stopped: a consistent dump holds an even number of rows.
type pairWriter struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	stop   chan struct{}
	done   chan error
	mu     sync.Mutex
	n      int
	stderr strings.Builder
}

// startPairWriter runs argv and writes txn(i) to it for i = 1, 2, ...
func startPairWriter(t *testing.T, env []string, argv []string, txn func(i int) string) *pairWriter {
	t.Helper()
	w := &pairWriter{stop: make(chan struct{}), done: make(chan error, 1)}
	w.cmd = exec.Command(argv[0], argv[1:]...)
	w.cmd.Env = env
	w.cmd.Stderr = &w.stderr
	in, err := w.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.in = in
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		bw := bufio.NewWriter(in)
		for i := 1; ; i++ {
			select {
			case <-w.stop:
				bw.Flush()
				in.Close()
				w.done <- w.cmd.Wait()
				return
			default:
			}
			if _, err := bw.WriteString(txn(i)); err != nil {
				w.done <- fmt.Errorf("writer: %w", err)
				return
			}
			bw.Flush()
			w.mu.Lock()
			w.n = i
			w.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() { w.Stop(t) })
	return w
}

// sent is how many transactions were sent.
func (w *pairWriter) sent() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// waitFor blocks until at least n transactions were sent.
func (w *pairWriter) waitFor(n int) {
	for w.sent() < n {
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop ends the writer and fails the test if the client failed.
func (w *pairWriter) Stop(t *testing.T) {
	t.Helper()
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	if err := <-w.done; err != nil && !errors.Is(err, os.ErrClosed) {
		t.Errorf("writer: %v: %s", err, w.stderr.String())
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// Helpers shared by the crash tests (crash_test.go, failpoint_test.go,
// randomkill_test.go): start escrow and kill it, then check what it left.

// proc is an escrow process started by a crash test.
type proc struct {
	cmd *exec.Cmd
	out bytes.Buffer // stdout and stderr
}

// start runs escrow with c's environment plus extra, without waiting.
func (c *cli) start(extra []string, args ...string) *proc {
	c.t.Helper()
	p := &proc{cmd: exec.Command(escrowBin, args...)}
	p.cmd.Env = append(append([]string(nil), c.env...), extra...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	return p
}

// killedBy reports whether err is the end of a process killed by sig.
func killedBy(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// resticCheck runs `restic check` on c's repository without taking a lock
// (a killed process leaves its own lock behind) and requires restic to
// find no errors.
func resticCheck(t *testing.T, c *cli, args ...string) {
	t.Helper()
	out, err := newResticFor(t, c).run("correct horse battery staple", append([]string{"--no-lock", "check"}, args...)...)
	if err != nil || !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check %v: %v\n%s", args, err, out)
	}
}

// crashChecks are the invariants after every kill: escrow's check (which
// walks every listed snapshot, so none references a missing tree or blob)
// and restic's agree the repository is valid; with readData both read and
// verify every stored pack.
func crashChecks(t *testing.T, c *cli, readData bool) {
	t.Helper()
	if readData {
		c.ok("check", "--read-data")
		resticCheck(t, c, "--read-data")
		return
	}
	c.ok("check")
	resticCheck(t, c)
}

// storeInspector reads c's repository in this process, through the
// command's own option handling, to see what the store and the index hold.
// It opens the repository once: unlocking the key runs scrypt, slow under
// the race detector.
type storeInspector struct {
	t *testing.T
	r *repo.Repository
}

func (c *cli) inspector() *storeInspector {
	c.t.Helper()
	vars := map[string]string{}
	for _, kv := range c.env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	g := &globalOptions{env: env{getenv: func(k string) string { return vars[k] }}}
	r, err := g.openRepo(context.Background())
	if err != nil {
		c.t.Fatalf("open the repository: %v", err)
	}
	c.t.Cleanup(func() { closeRepo(r) })
	return &storeInspector{t: c.t, r: r}
}

// storeState is what a repository holds at one moment: the pack files in
// the store (name → size) and the blobs its index files list.
type storeState struct {
	packs   map[string]int64
	indexed map[repo.BlobHandle]repo.PackedBlob
}

func (in *storeInspector) state() storeState {
	in.t.Helper()
	ctx := context.Background()
	s := storeState{packs: map[string]int64{}, indexed: map[repo.BlobHandle]repo.PackedBlob{}}
	err := in.r.Backend().List(ctx, remote.PackFile, func(fi remote.FileInfo) error {
		s.packs[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		in.t.Fatalf("list packs: %v", err)
	}
	in.r.ResetIndex()
	if err := in.r.LoadIndex(ctx); err != nil {
		in.t.Fatalf("load the index: %v", err)
	}
	in.r.Index().Each(func(b repo.PackedBlob) { s.indexed[b.BlobHandle] = b })
	return s
}

// newPacks returns the packs of s missing from before, and their bytes.
func (s storeState) newPacks(before storeState) (map[string]int64, int64) {
	out, n := map[string]int64{}, int64(0)
	for name, size := range s.packs {
		if _, ok := before.packs[name]; !ok {
			out[name] = size
			n += size
		}
	}
	return out, n
}

// blobBytes is the stored size of the blobs s indexes and before did not:
// for s after a complete run, what a clean run had to store; for s after a
// kill, what the killed run committed (the next run must reuse it).
func (s storeState) blobBytes(before storeState) int64 {
	var n int64
	for h, b := range s.indexed {
		if _, ok := before.indexed[h]; !ok {
			n += int64(b.Length)
		}
	}
	return n
}

// reuploaded lists the blobs that after stores in packs new since mid
// although mid's index already listed them (committed work done again),
// and counts the data blobs in those new packs.
func reuploaded(mid, after storeState) (again []repo.BlobHandle, dataBlobs int) {
	fresh, _ := after.newPacks(mid)
	for h, b := range after.indexed {
		if _, isNew := fresh[b.PackID.String()]; !isNew {
			continue
		}
		if h.Type == repo.DataBlob {
			dataBlobs++
		}
		if _, had := mid.indexed[h]; had {
			again = append(again, h)
		}
	}
	return again, dataBlobs
}

// growSite adds a file of random bytes (size between min and min+spread)
// and rewrites a small one, so that the next backup has new data to store.
func growSite(t *testing.T, src string, rnd *rand.Rand, name string, min, spread int) {
	t.Helper()
	data := make([]byte, min+rnd.Intn(spread+1))
	rnd.Read(data)
	if err := os.WriteFile(filepath.Join(src, "wp-content", "uploads", name+".bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "wp-config.php"), []byte("<?php // "+name+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

// restoresExactly restores the latest snapshot of src and compares it
// with src.
func restoresExactly(t *testing.T, c *cli, src string) {
	t.Helper()
	target := t.TempDir()
	c.ok("restore", "latest", "--path", src, "--target", target, "--verify")
	sameTree(t, digest(t, src), digest(t, filepath.Join(target, src)))
}

// testSeed returns a logged seed: ESCROW_TEST_SEED to repeat a run, else
// the clock.
func testSeed(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("ESCROW_TEST_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("ESCROW_TEST_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (set ESCROW_TEST_SEED to repeat)", seed)
	return seed
}

// sqliteSource makes a SQLite database of about rows*200 bytes for dump
// tests, and returns its path.
func sqliteSource(t *testing.T, dir string, rows int) string {
	t.Helper()
	sqlite3 := testenv.RequireBinary(t, "sqlite3")
	path := filepath.Join(dir, "app.sqlite")
	addRows(t, sqlite3, path, 0, rows)
	return path
}

// addRows inserts rows [from, from+n) of random-looking text.
func addRows(t *testing.T, sqlite3, path string, from, n int) {
	t.Helper()
	sql := "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT);" +
		"WITH RECURSIVE g(i) AS (SELECT " + strconv.Itoa(from) + " UNION ALL SELECT i+1 FROM g WHERE i < " + strconv.Itoa(from+n-1) + ") " +
		"INSERT INTO notes SELECT i, hex(randomblob(100)) FROM g;"
	// A dump killed with escrow can leave its sqlite3 reading the file a
	// moment longer: wait for it rather than fail as busy.
	if out, err := exec.Command(sqlite3, "-cmd", ".timeout 30000", path, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
}

// sqliteDump is the text dump of a SQLite database, for comparing a
// restored one with its source.
func sqliteDump(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command(testenv.RequireBinary(t, "sqlite3"), path, ".dump").Output()
	if err != nil {
		t.Fatalf("sqlite3 %s .dump: %v", path, err)
	}
	return string(out)
}

// restoresDB restores the latest dump of the SQLite database name into a
// new file and compares it with src.
func restoresDB(t *testing.T, c *cli, name, src string) {
	t.Helper()
	restored := filepath.Join(t.TempDir(), "restored.sqlite")
	c.ok("restore-db", "latest", "sqlite/"+name, "--to", "sqlite://"+restored, "--create")
	if got, want := sqliteDump(t, restored), sqliteDump(t, src); got != want {
		t.Fatalf("restored database differs from the source (%d vs %d bytes of dump)", len(got), len(want))
	}
}

//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/internal/s3proxy"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// The store outage suite (docs/reliability.md, "Store outages"): the store
// goes away in the middle of a backup and comes back, or misbehaves through
// a fault-injecting proxy during backup, check and restore. Runs complete
// or fail with a clear error, and whatever happened, every listed snapshot
// is whole, every stored object is what its name says, and restores are
// byte-identical.

// outageFor is how long the store stays down in TestStoreOutage: seconds in
// the quick tier, 3 minutes in the long tier, or ESCROW_OUTAGE (a Go
// duration, e.g. 15m) to ride out the whole default retry budget for real.
func outageFor(t *testing.T) time.Duration {
	t.Helper()
	if v := os.Getenv("ESCROW_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("ESCROW_OUTAGE=%q: want a duration such as 3m", v)
		}
		return d
	}
	if testenv.Long() {
		return 3 * time.Minute
	}
	return 5 * time.Second
}

// background is an escrow command running as a child process.
type background struct {
	cmd       *exec.Cmd
	out, errb bytes.Buffer
	done      chan struct{}
	res       result
}

func (c *cli) background(args ...string) *background {
	c.t.Helper()
	b := &background{done: make(chan struct{})}
	b.cmd = exec.Command(escrowBin, args...)
	b.cmd.Env = c.env
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.errb
	if err := b.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	go func() {
		defer close(b.done)
		err := b.cmd.Wait()
		b.res.code = b.cmd.ProcessState.ExitCode()
		if b.res.code < 0 {
			b.res.code = -1
			b.res.stderr = err.Error()
		}
	}()
	return b
}

func (b *background) running() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// wait returns the command's result once it has exited.
func (b *background) wait() result {
	<-b.done
	b.res.stdout, b.res.stderr = b.out.String(), b.errb.String()+b.res.stderr
	return b.res
}

// until polls cond every 10ms while b runs; it fails the test if b exits
// first or a minute passes.
func (b *background) until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if !b.running() {
			r := b.wait()
			t.Fatalf("the command ended (exit %d) before %s; make its work bigger\n%s", r.code, what, r.stderr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countObjects counts the objects under prefix in bucket, listing with the
// root credential straight from the server.
func countStored(t *testing.T, mc *minio.Client, bucket, prefix string) int {
	t.Helper()
	n := 0
	for o := range mc.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %s/%s: %v", bucket, prefix, o.Err)
		}
		n++
	}
	return n
}

// requireNothingHalfWritten reads every object under prefix that restic's
// layout names by the SHA-256 of its content (packs, indexes, snapshots,
// keys, locks) and checks that it hashes to its name: an upload cut short
// would not. Orphan packs no index lists are read too. It returns the
// number of objects read.
func requireNothingHalfWritten(t *testing.T, mc *minio.Client, bucket, prefix string) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	for _, dir := range []string{"data", "index", "snapshots", "keys", "locks"} {
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix + "/" + dir + "/", Recursive: true}) {
			if o.Err != nil {
				t.Fatalf("list %s: %v", dir, o.Err)
			}
			obj, err := mc.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, err = io.Copy(h, obj)
			obj.Close()
			if err != nil {
				t.Fatalf("read %s: %v", o.Key, err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != path.Base(o.Key) {
				t.Errorf("%s (%d bytes) hashes to %s: half-written or damaged", o.Key, o.Size, got)
			}
			n++
		}
	}
	return n
}

// requireWhole checks the repository after an ordeal: escrow's and
// restic's full checks pass, and the latest snapshot restores
// byte-identically to src as it is now.
func requireWhole(t *testing.T, c *cli, src string) {
	t.Helper()
	c.ok("check", "--read-data")
	// --no-lock: restic's exclusive check would want the host's lock
	// files gone, and removing them is the owner's job, not the host's.
	if out, err := newResticFor(t, c).run("correct horse battery staple", "--no-lock", "check", "--read-data"); err != nil || !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check --read-data: %v\n%s", err, out)
	}
	target := t.TempDir()
	c.ok("restore", "latest", "--target", target, "--verify")
	sameTree(t, digest(t, src), digest(t, filepath.Join(target, src)))
}

// TestStoreOutage stops the MinIO server in the middle of a backup's
// uploads and starts it again on the same address after outageFor: the
// backup rides it out and completes. Then it stops the server mid-upload
// for longer than a short --retry-for: the backup ends with an error that
// names the store, how long it tried and what to do, no snapshot of it is
// listed, and the next backup completes.
func TestStoreOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	outage := outageFor(t)
	m := testenv.NewRestartableMinIO(t)
	bucket := m.NewBucket(t)
	mc := m.Client(t)
	c := newCLI(t, m.URL(bucket, "site"), m.Env()...)
	c.ok("init")
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 11, 1)
	writeRandom(t, filepath.Join(src, "wp-content/uploads/a.bin"), 40<<20, 11)

	// The default budget rides out 15 minutes; an outage set longer gets
	// a budget to match.
	args := []string{"--pack-size", "1", "backup", src}
	if outage > 15*time.Minute {
		args = append([]string{"--retry-for", (outage + 5*time.Minute).String()}, args...)
	}
	b := c.background(args...)
	b.until(t, "the backup's third pack", func() bool { return countStored(t, mc, bucket, "site/data/") >= 3 })
	m.Stop()
	stopped := time.Now()
	t.Logf("MinIO stopped mid-upload; down for %s", outage)
	time.Sleep(outage)
	if !b.running() {
		r := b.wait()
		t.Fatalf("the backup ended during the outage (exit %d):\n%s", r.code, r.stderr)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	r := b.wait()
	if r.code != 0 {
		t.Fatalf("the backup did not ride out a %s outage: exit %d\n%s", outage, r.code, r.stderr)
	}
	retries := strings.Count(r.stderr, "will retry")
	t.Logf("rode out %s: done %s after the store came back, %d retries logged",
		outage, time.Since(stopped)-outage, retries)
	if retries == 0 {
		t.Errorf("no retry was logged: the outage did not hit the backup\n%s", r.stderr)
	}
	if n := len(c.snapshots()); n != 1 {
		t.Fatalf("%d snapshots after the backup, want 1", n)
	}
	requireWhole(t, c, src)

	// Longer than the budget: a clear error, and nothing listed.
	writeRandom(t, filepath.Join(src, "wp-content/uploads/b.bin"), 40<<20, 12)
	const budget = 4 * time.Second
	before := countStored(t, mc, bucket, "site/data/")
	b = c.background("--retry-for", budget.String(), "--pack-size", "1", "backup", src)
	b.until(t, "the second backup's third pack", func() bool { return countStored(t, mc, bucket, "site/data/") >= before+3 })
	m.Stop()
	stopped = time.Now()
	r = b.wait()
	gaveUp := time.Since(stopped)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("with --retry-for %s the backup gave up %s after the store went down (exit %d):\n%s", budget, gaveUp.Round(time.Millisecond), r.code, lastLine(r.stderr))
	if r.code != exitFailure {
		t.Errorf("exit %d, want %d", r.code, exitFailure)
	}
	for _, want := range []string{m.Endpoint, "gave up after", "retry budget of " + budget.String(), "--retry-for", "check that it is running"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the error does not say %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr+r.stdout, m.SecretKey) {
		t.Error("the secret key is in the output")
	}
	// The retry waits at most 30s past the budget's last attempt.
	if gaveUp < budget/2 || gaveUp > budget+45*time.Second {
		t.Errorf("gave up %s after the store went down, want about the %s budget", gaveUp, budget)
	}
	if n := len(c.snapshots()); n != 1 {
		t.Errorf("%d snapshots after a failed backup, want 1: a backup that failed listed a snapshot", n)
	}
	c.ok("check")
	c.ok("--pack-size", "1", "backup", src)
	if n := len(c.snapshots()); n != 2 {
		t.Errorf("%d snapshots after the next backup, want 2", n)
	}
	requireWhole(t, c, src)
	t.Logf("%d stored objects hash to their names", requireNothingHalfWritten(t, mc, bucket, "site"))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// faultPlan is one round of faults for TestStoreFaults, injected for one
// command.
type faultPlan struct {
	name  string
	rules []s3proxy.Rule
}

// TestStoreFaults runs backups, checks and restores through a proxy that
// delays, refuses, resets, fails with 500 and 503, and truncates and flips
// bits of downloads. Every command completes; afterwards escrow's and
// restic's --read-data checks pass, the restore is byte-identical, every
// stored object hashes to its name, and the proxy saw no DELETE.
func TestStoreFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	rounds := 1
	if testenv.Long() {
		rounds = 6
	}
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	proxy, via := s3proxy.Front(t, srv)
	c := newCLI(t, via.URL(bucket, "site"), srv.Env()...)
	// Straight to MinIO, for restic and the final checks.
	direct := newCLI(t, srv.URL(bucket, "site"), srv.Env()...)
	direct.env = append(direct.env[:3:3], c.env[3:]...) // the same password file

	p := "/" + bucket + "/site/"
	inject(t, proxy, "init", func() { c.ok("init") },
		s3proxy.Rule{Method: http.MethodPut, PathPrefix: p + "config", Count: 1, Action: s3proxy.Fail, Status: 503},
		s3proxy.Rule{Latency: 20 * time.Millisecond, Count: 5})

	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 21, 1)
	backup := []string{"--pack-size", "1", "backup", src}
	grow := func(name string, seed int64) {
		writeRandom(t, filepath.Join(src, "wp-content/uploads", name), 12<<20, seed)
	}

	plans := []faultPlan{
		{"latency and 500/503 on uploads", []s3proxy.Rule{
			{Method: http.MethodPut, PathPrefix: p + "data/", Count: 3, Action: s3proxy.Fail, Status: 503},
			{Method: http.MethodPut, PathPrefix: p + "index/", Count: 2, Action: s3proxy.Fail, Status: 500},
			{Method: http.MethodPut, PathPrefix: p + "snapshots/", Count: 1, Action: s3proxy.Fail, Status: 503},
			{Method: http.MethodGet, Count: 2, Action: s3proxy.Fail, Status: 500},
			{Latency: 30 * time.Millisecond},
		}},
		{"resets mid-upload", []s3proxy.Rule{
			{Method: http.MethodPut, PathPrefix: p + "data/", Count: 3, Action: s3proxy.Reset, Bytes: 64 << 10},
			{Method: http.MethodPut, PathPrefix: p + "index/", Count: 1, Action: s3proxy.Reset, Bytes: 100},
			{Method: http.MethodPut, PathPrefix: p + "snapshots/", Count: 1, Action: s3proxy.Reset, Bytes: 10},
			{Method: http.MethodPut, PathPrefix: p + "locks/", Count: 1, Action: s3proxy.Reset, Bytes: 10},
		}},
		{"truncated and flipped downloads", []s3proxy.Rule{
			// The backup reads the index and the parent's trees.
			{Method: http.MethodGet, PathPrefix: p + "index/", Count: 1, Action: s3proxy.Flip, Bytes: 77},
			{Method: http.MethodGet, PathPrefix: p + "snapshots/", Count: 1, Action: s3proxy.Truncate, Bytes: 50},
			{Method: http.MethodGet, PathPrefix: p + "data/", Count: 2, Action: s3proxy.Truncate, Bytes: 1000},
			{Method: http.MethodGet, PathPrefix: p + "keys/", Count: 1, Action: s3proxy.Truncate, Bytes: 20},
		}},
	}
	faulted := 0
	for round := range rounds {
		for i, plan := range plans {
			grow(fmt.Sprintf("r%d-%d.bin", round, i), int64(100*round+i))
			inject(t, proxy, "backup with "+plan.name, func() { c.ok(backup...) }, plan.rules...)
			c.ok("check")
		}

		// Refused connections: the proxy stops listening mid-upload.
		grow(fmt.Sprintf("r%d-refused.bin", round), int64(100*round+50))
		putsBefore := countPuts(proxy, "/data/")
		b := c.background(backup...)
		b.until(t, "the backup's second pack", func() bool { return countPuts(proxy, "/data/") >= putsBefore+2 })
		proxy.Stop()
		time.Sleep(3 * time.Second)
		if err := proxy.Start(); err != nil {
			t.Fatal(err)
		}
		if r := b.wait(); r.code != 0 {
			t.Fatalf("backup with the store refusing connections for 3s: exit %d\n%s", r.code, r.stderr)
		} else if !strings.Contains(r.stderr, "will retry") {
			t.Errorf("the refused connections did not hit the backup:\n%s", r.stderr)
		}
		c.ok("check")

		// check --read-data: flipped packs are read again and not
		// reported; truncated and failed reads are retried.
		packs := storedPacks(t, srv.Client(t), bucket, "site/data/")
		var res result
		inject(t, proxy, "check --read-data", func() { res = c.run(nil, "check", "--read-data") },
			s3proxy.Rule{Method: http.MethodGet, PathPrefix: p + "data/" + packs[0], Count: 1, Action: s3proxy.Flip, Bytes: 4000},
			s3proxy.Rule{Method: http.MethodGet, PathPrefix: p + "data/" + packs[len(packs)/2], Count: 1, Action: s3proxy.Flip, Bytes: 123457},
			s3proxy.Rule{Method: http.MethodGet, PathPrefix: p + "data/", Count: 3, Action: s3proxy.Truncate, Bytes: 5000},
			s3proxy.Rule{Method: http.MethodGet, PathPrefix: p + "snapshots/", Count: 1, Action: s3proxy.Flip, Bytes: 33},
			s3proxy.Rule{Method: http.MethodGet, Count: 3, Action: s3proxy.Fail, Status: 503},
			s3proxy.Rule{Latency: 10 * time.Millisecond})
		if res.code != 0 || !strings.Contains(res.stdout, "no errors were found") {
			t.Fatalf("check --read-data through flaky reads raised a false alarm: exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
		}
		// A flipped tree read is taken again blob by blob, without a
		// warning; a flipped pack or snapshot read warns.
		reread := strings.Count(res.stderr, "sound when read again")
		t.Logf("check --read-data: %d reads taken again after a flipped bit", reread)
		if reread == 0 {
			t.Errorf("no read was taken again after 3 flipped bits:\n%s", res.stderr)
		}

		// restore: the same faults, and every file comes back exact.
		target := t.TempDir()
		inject(t, proxy, "restore", func() { res = c.run(nil, "restore", "latest", "--target", target, "--verify") },
			s3proxy.Rule{Method: http.MethodGet, PathPrefix: p + "data/", Count: 3, Action: s3proxy.Flip, Bytes: 999},
			s3proxy.Rule{Method: http.MethodGet, PathPrefix: p + "data/", Count: 3, Action: s3proxy.Truncate, Bytes: 3000},
			s3proxy.Rule{Method: http.MethodGet, Count: 2, Action: s3proxy.Fail, Status: 500})
		if res.code != 0 {
			t.Fatalf("restore through flaky reads: exit %d\n%s", res.code, res.stderr)
		}
		sameTree(t, digest(t, src), digest(t, filepath.Join(target, src)))
	}
	for f, n := range proxy.Faulted() {
		faulted += n
		t.Logf("fault %-40s %d requests", f, n)
	}
	t.Logf("%d requests through the proxy (%s), %d with a fault", len(proxy.Requests()), proxy.Summary(), faulted)
	if n := proxy.Counts()[http.MethodDelete]; n != 0 {
		t.Errorf("the backing-up side sent %d DELETE requests, want none", n)
	}
	n := len(direct.snapshots())
	if want := rounds * (len(plans) + 1); n != want {
		t.Errorf("%d snapshots, want %d", n, want)
	}
	requireWhole(t, direct, src)
	t.Logf("%d stored objects hash to their names", requireNothingHalfWritten(t, srv.Client(t), bucket, "site"))
}

// inject runs fn with rules set on the proxy, clears them, and fails the
// test unless every rule with a Count was used up: the faults did reach the
// command.
func inject(t *testing.T, proxy *s3proxy.Proxy, what string, fn func(), rules ...s3proxy.Rule) {
	t.Helper()
	before := proxy.Faulted()
	want := map[string]int{}
	for _, r := range rules {
		proxy.Inject(r)
		want[r.String()] += r.Count
	}
	fn()
	proxy.Clear()
	after := proxy.Faulted()
	for f, n := range want {
		if got := after[f] - before[f]; got < n {
			t.Errorf("%s: fault %q applied to %d requests, want %d: it did not reach the command", what, f, got, n)
		}
	}
}

func storedPacks(t *testing.T, mc *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var out []string
	for o := range mc.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, strings.TrimPrefix(o.Key, prefix))
	}
	if len(out) < 2 {
		t.Fatalf("%d packs stored, want at least 2", len(out))
	}
	return out
}

//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// agentSetup is a site, a repository on MinIO and an agent configuration
// that names them; the agent gets its S3 secret from a file, never from
// its environment.
type agentSetup struct {
	c       *cli // for init, snapshots, restore: repository and S3 in its env
	src     string
	cfg     string
	state   string
	restic  []string // environment for restic
	repoURL string
}

func newAgentSetup(t *testing.T) *agentSetup {
	t.Helper()
	srv := testenv.MinIO(t)
	return newAgentSetupOn(t, srv, srv.NewBucket(t))
}

// newAgentSetupOn is newAgentSetup with the repository in bucket on srv
// (which may be a proxy in front of the test server).
func newAgentSetupOn(t *testing.T, srv testenv.Server, bucket string) *agentSetup {
	t.Helper()
	dir := t.TempDir()
	s := &agentSetup{
		repoURL: srv.URL(bucket, "site"),
		src:     filepath.Join(dir, "site"),
		cfg:     filepath.Join(dir, "escrow.yaml"),
		state:   filepath.Join(dir, "state"),
	}
	s.c = newCLI(t, s.repoURL, srv.Env()...)
	s.c.ok("init")
	makeSite(t, s.src, 7, 1)
	pw := strings.TrimPrefix(s.c.env[3], "ESCROW_PASSWORD_FILE=")
	secret := filepath.Join(dir, "s3.secret")
	if err := os.WriteFile(secret, []byte(srv.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.restic = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_REPOSITORY=" + s.repoURL, "RESTIC_PASSWORD_FILE=" + pw}, srv.Env()...)
	s.writeConfig(t, fmt.Sprintf(`repository: %s
password_file: %s
s3:
  access_key_id: %s
  secret_access_key_file: %s
sources:
  - path: %s
schedule:
  quiet_period: 300ms
  max_delay: 2s
state_dir: %s
log:
  format: json
  level: debug
`, s.repoURL, pw, srv.AccessKey, secret, s.src, s.state))
	return s
}

func (s *agentSetup) writeConfig(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(s.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

type agentProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  string
	done chan error
}

// start runs `escrow agent` with only PATH and HOME in its environment,
// and extra (a failpoint, say).
func (s *agentSetup) start(t *testing.T, extra ...string) *agentProc {
	t.Helper()
	log := filepath.Join(t.TempDir(), "agent.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(escrowBin, "agent", "--config", s.cfg)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, extra...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	p := &agentProc{t: t, cmd: cmd, log: log, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *agentProc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// stop sends sig and waits for the agent to end, within 30 s.
func (p *agentProc) stop(sig syscall.Signal) error {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		p.t.Fatalf("agent did not stop within 30 s of %v\n%s", sig, p.logText())
	}
	return nil
}

type statusJSON struct {
	Running  bool         `json:"running"`
	Problems []string     `json:"problems"`
	Status   agent.Status `json:"status"`
}

// status runs `escrow status --json`; it exits 0 or 4.
func (s *agentSetup) status(t *testing.T) (statusJSON, int) {
	t.Helper()
	r := s.c.run(nil, "status", "--config", s.cfg, "--json")
	var st statusJSON
	if r.code != 0 && r.code != exitUnhealthy || json.Unmarshal([]byte(r.stdout), &st) != nil {
		t.Fatalf("escrow status: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	return st, r.code
}

// waitFor polls the status until ok, or fails after 60 s.
func (s *agentSetup) waitFor(t *testing.T, p *agentProc, what string, ok func(agent.SourceStatus) bool) agent.SourceStatus {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			t.Fatalf("agent exited (%v) while waiting for %s\n%s", err, what, p.logText())
		default:
		}
		if _, err := os.Stat(filepath.Join(s.state, agent.StatusFile)); err == nil {
			st, _ := s.status(t)
			if len(st.Status.Sources) == 1 && ok(st.Status.Sources[0]) {
				return st.Status.Sources[0]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s\n%s", what, p.logText())
	return agent.SourceStatus{}
}

// settled waits until every change made before the call is saved.
func (s *agentSetup) settled(t *testing.T, p *agentProc) agent.SourceStatus {
	t.Helper()
	time.Sleep(100 * time.Millisecond)
	after := time.Now()
	return s.waitFor(t, p, "changes to be saved", func(st agent.SourceStatus) bool {
		return st.PendingSince.IsZero() && st.Verified.After(after) && st.LastError == ""
	})
}

// requireLatestIsTree restores the latest snapshot and compares it with src.
func (s *agentSetup) requireLatestIsTree(t *testing.T, step string) {
	t.Helper()
	target := t.TempDir()
	s.c.ok("restore", "latest", "--target", target)
	want, got := digest(t, s.src), digest(t, filepath.Join(target, s.src))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("after %s: %s: snapshot has %q, tree has %q", step, k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("after %s: %s is in the snapshot but no longer in the tree", step, k)
		}
	}
}

func (s *agentSetup) resticCheck(t *testing.T, args ...string) {
	t.Helper()
	restic := testenv.RequireBinary(t, "restic")
	cmd := exec.Command(restic, append([]string{"--no-cache"}, args...)...)
	cmd.Env = s.restic
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no errors were found") {
		t.Fatalf("restic %v: %v\n%s", args, err, out)
	}
}

func TestAgentCommand(t *testing.T) {
	s := newAgentSetup(t)
	if r := s.c.run(nil, "config", "check", "--config", s.cfg); r.code != 0 {
		t.Fatalf("config check: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	p := s.start(t)
	s.waitFor(t, p, "the first snapshot", func(st agent.SourceStatus) bool { return st.LastSnapshot != nil })
	s.requireLatestIsTree(t, "the first rescan")

	// Changes are saved within seconds, without a rescan.
	if err := os.WriteFile(filepath.Join(s.src, "wp-content/new-post.html"), []byte("<p>hello</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(s.src, "cache/x.tmp")); err != nil {
		t.Fatal(err)
	}
	st := s.settled(t, p)
	if st.LastSnapshot.Kind != "incremental" {
		t.Errorf("a change was saved by a %s, want an incremental snapshot", st.LastSnapshot.Kind)
	}
	s.requireLatestIsTree(t, "a create and a delete")

	// SIGUSR1: a full rescan, which finds nothing the watcher missed.
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	st = s.waitFor(t, p, "the requested rescan", func(st agent.SourceStatus) bool {
		return st.LastRescan != nil && st.LastRescan.Reason == "requested"
	})
	if st.LastRescan.Changes != 0 || st.MissedTotal != 0 {
		t.Errorf("rescan: %d changes, %d missed; want 0 and 0", st.LastRescan.Changes, st.MissedTotal)
	}

	// SIGHUP with a broken file: refused, the agent goes on.
	good, _ := os.ReadFile(s.cfg)
	s.writeConfig(t, string(good)+"schedule_typo: 1\n")
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.logText(), "keeping the running one") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if log := p.logText(); !strings.Contains(log, "keeping the running one") || !strings.Contains(log, "schedule_typo") {
		t.Fatalf("a bad configuration on SIGHUP was not refused with its problem:\n%s", log)
	}
	if err := os.WriteFile(filepath.Join(s.src, "after-bad-reload.txt"), []byte("still protected"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.settled(t, p)
	s.requireLatestIsTree(t, "a refused reload")

	// SIGHUP with a good file: the new excludes apply.
	s.writeConfig(t, strings.Replace(string(good), "  - path: "+s.src+"\n", "  - path: "+s.src+"\n    exclude: [\"*.log\"]\n", 1))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(30 * time.Second)
	for strings.Count(p.logText(), "agent started") < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.waitFor(t, p, "the rescan after the reload", func(st agent.SourceStatus) bool {
		return st.LastRescan != nil && st.LastRescan.Reason == "start"
	})
	for _, f := range []string{"debug.log", "kept.txt"} {
		if err := os.WriteFile(filepath.Join(s.src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.settled(t, p)
	ls := s.c.ok("ls", "latest", s.src)
	if !strings.Contains(ls, "kept.txt") || strings.Contains(ls, "debug.log") {
		t.Errorf("after reloading with exclude *.log, the latest snapshot lists:\n%s", ls)
	}

	// SIGTERM: a clean stop; status says so and exits 4.
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("agent exit after SIGTERM: %v\n%s", err, p.logText())
	}
	stj, code := s.status(t)
	if code != exitUnhealthy || stj.Running || !stj.Status.Stopped {
		t.Errorf("status after stop: exit %d, running %v, stopped %v", code, stj.Running, stj.Status.Stopped)
	}
	if log := p.logText(); strings.Contains(log, strings.TrimSpace(mustRead(t, s.cfg, "secret_access_key_file"))) {
		t.Error("the log holds the S3 secret")
	}
	s.c.ok("check")
	// The agent released its lock with a record (it never deletes);
	// restic's exclusive check needs the owner's cleanup first.
	s.c.ok("unlock")
	s.resticCheck(t, "check")
}

// mustRead returns the content of the file named by a config key.
func mustRead(t *testing.T, cfg, key string) string {
	t.Helper()
	text, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(text), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && k == key {
			b, err := os.ReadFile(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
	t.Fatalf("%s not in %s", key, cfg)
	return ""
}

// TestAgentSurvivesSIGKILL kills the agent at random moments while the
// site changes, and checks after each kill that the repository is valid for
// escrow and restic; at the end a restarted agent saves the current tree.
func TestAgentSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	s := newAgentSetup(t)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rnd := rand.New(rand.NewSource(seed))

	stop := make(chan struct{})
	churned := make(chan int)
	go func() { churned <- churn(s.src, seed, stop) }()

	const rounds = 20
	for i := 1; i <= rounds; i++ {
		p := s.start(t)
		delay := 500*time.Millisecond + time.Duration(rnd.Int63n(int64(3*time.Second)))
		time.Sleep(delay)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		t.Logf("round %d: SIGKILL after %v", i, delay)
		s.c.ok("check")
		s.resticCheck(t, "--no-lock", "check")
	}
	close(stop)
	t.Logf("%d changes made during the kills", <-churned)

	p := s.start(t)
	s.settled(t, p)
	s.requireLatestIsTree(t, "20 kills and a restart")
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	s.c.ok("check", "--read-data")
	s.c.ok("unlock") // the owner's cleanup of the lock files the agents left
	s.resticCheck(t, "check", "--read-data")
}

// churn changes the tree under root until stop: new, rewritten, appended,
// deleted and renamed files, and new and removed directories. It returns
// the number of changes.
func churn(root string, seed int64, stop <-chan struct{}) int {
	rnd := rand.New(rand.NewSource(seed + 1))
	n := 0
	for {
		select {
		case <-stop:
			return n
		case <-time.After(time.Duration(rnd.Intn(40)) * time.Millisecond):
		}
		dir := filepath.Join(root, "churn", fmt.Sprintf("d%d", rnd.Intn(6)))
		_ = os.MkdirAll(dir, 0o755)
		f := filepath.Join(dir, fmt.Sprintf("f%d", rnd.Intn(20)))
		switch rnd.Intn(6) {
		case 0, 1:
			data := make([]byte, rnd.Intn(64<<10))
			rnd.Read(data)
			_ = os.WriteFile(f, data, 0o644)
		case 2:
			if fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0); err == nil {
				_, _ = fh.WriteString("appended\n")
				fh.Close()
			}
		case 3:
			_ = os.Remove(f)
		case 4:
			_ = os.Rename(f, filepath.Join(root, "churn", fmt.Sprintf("d%d", rnd.Intn(6)), fmt.Sprintf("f%d", rnd.Intn(20))))
		case 5:
			if rnd.Intn(8) == 0 {
				_ = os.RemoveAll(dir)
			}
		}
		n++
	}
}

// TestAgentDumpsDatabases runs the configured database dumps as agent jobs:
// an SQLite database is dumped into a snapshot of its own, and a server that
// cannot be reached is reported by status, with no snapshot.
func TestAgentDumpsDatabases(t *testing.T) {
	sqlite := testenv.RequireBinary(t, "sqlite3")
	s := newAgentSetup(t)
	dbFile := filepath.Join(t.TempDir(), "app.sqlite")
	if out, err := exec.Command(sqlite, dbFile, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users(name) VALUES ('ada'), ('grace');").CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v\n%s", err, out)
	}
	text, _ := os.ReadFile(s.cfg)
	s.writeConfig(t, string(text)+fmt.Sprintf(`databases:
  - type: sqlite
    path: %s
    every: 1h
  - type: mysql
    name: unreachable
    host: 127.0.0.1
    port: 1
    user: backup
    databases: [shop]
    every: 1h
`, dbFile))
	p := s.start(t)
	deadline := time.Now().Add(60 * time.Second)
	var st statusJSON
	var code int
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(s.state, agent.StatusFile)); err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		st, code = s.status(t)
		if len(st.Status.Jobs) == 2 && !st.Status.Jobs[0].LastSuccess.IsZero() && st.Status.Jobs[1].Failures > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(st.Status.Jobs) != 2 || st.Status.Jobs[0].LastSuccess.IsZero() || st.Status.Jobs[1].Failures == 0 {
		t.Fatalf("jobs never ran as expected: %+v\n%s", st.Status.Jobs, p.logText())
	}
	if code != exitUnhealthy || !strings.Contains(strings.Join(st.Problems, "\n"), "database unreachable") {
		t.Errorf("status with a failing dump: exit %d, problems %q", code, st.Problems)
	}
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("agent exit: %v", err)
	}

	dump := s.c.ok("dump", "latest", "/databases/sqlite/app.sql", "--tag", "db")
	if !strings.Contains(dump, "grace") {
		t.Errorf("the SQLite dump in the repository lacks its rows:\n%s", dump)
	}
	for _, sn := range s.c.snapshots() {
		for _, p := range sn.Paths {
			if strings.Contains(p, "mysql") {
				t.Errorf("a snapshot was saved for the failed dump: %+v", sn)
			}
		}
	}

	// The same, by hand, from the configuration.
	out := s.c.ok("db", "dump", "--config", s.cfg, "sqlite")
	if !strings.Contains(out, "sqlite/app") {
		t.Errorf("db dump --config: %s", out)
	}
	if r := s.c.run(nil, "db", "dump", "--config", s.cfg, "nosuch"); r.code != exitUsage || !strings.Contains(r.stderr, "unreachable") {
		t.Errorf("db dump of an unknown name: exit %d, %s", r.code, r.stderr)
	}
}

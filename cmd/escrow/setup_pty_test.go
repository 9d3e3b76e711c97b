//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/kit"
)

// openPTY opens a pseudo-terminal pair: the test holds the master, the
// child runs on the slave as on a real terminal (no echo for secrets, line
// editing).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open the pty's terminal: %v", err)
	}
	return m, s
}

// session drives a program on a pseudo-terminal: it waits for the
// questions and types the answers.
type session struct {
	t      *testing.T
	cmd    *exec.Cmd
	master *os.File
	slave  *os.File
	mu     sync.Mutex
	out    bytes.Buffer
	pos    int // what expect has consumed
	closed chan struct{}
}

func startSession(t *testing.T, cmd *exec.Cmd) *session {
	t.Helper()
	m, s := openPTY(t)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	se := &session{t: t, cmd: cmd, master: m, slave: s, closed: make(chan struct{})}
	go func() {
		defer close(se.closed)
		buf := make([]byte, 4096)
		for {
			n, err := m.Read(buf)
			se.mu.Lock()
			se.out.Write(buf[:n])
			se.mu.Unlock()
			if err != nil { // EIO once the child and our slave are gone
				return
			}
		}
	}()
	t.Cleanup(func() { m.Close(); s.Close() })
	return se
}

// expect waits for s in the output after what was already matched.
func (se *session) expect(s string) {
	se.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		se.mu.Lock()
		rest := se.out.String()[se.pos:]
		if i := strings.Index(rest, s); i >= 0 {
			se.pos += i + len(s)
			se.mu.Unlock()
			return
		}
		se.mu.Unlock()
		select {
		case <-se.closed:
			se.t.Fatalf("the program ended before asking %q; its output:\n%s", s, se.output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	se.t.Fatalf("timed out waiting for %q; output:\n%s", s, se.output())
}

// answer waits for a question and types the answer.
func (se *session) answer(question, text string) {
	se.t.Helper()
	se.expect(question)
	if _, err := se.master.Write([]byte(text + "\n")); err != nil {
		se.t.Fatal(err)
	}
}

// answerSecret waits until the program has turned echo off, so that the
// secret is typed into a terminal that does not show it.
func (se *session) answerSecret(question, text string) {
	se.t.Helper()
	se.expect(question)
	deadline := time.Now().Add(time.Minute)
	for {
		tio, err := unix.IoctlGetTermios(int(se.slave.Fd()), unix.TCGETS)
		if err != nil {
			se.t.Fatal(err)
		}
		if tio.Lflag&unix.ECHO == 0 {
			break
		}
		if time.Now().After(deadline) {
			se.t.Fatalf("echo stayed on for the secret question %q", question)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := se.master.Write([]byte(text + "\n")); err != nil {
		se.t.Fatal(err)
	}
}

// finish waits up to limit for the program to exit successfully and
// returns everything it wrote.
func (se *session) finish(limit time.Duration) string {
	se.t.Helper()
	waitErr := make(chan error, 1)
	go func() { waitErr <- se.cmd.Wait() }()
	select {
	case err := <-waitErr:
		se.slave.Close()
		<-se.closed
		if err != nil {
			se.t.Fatalf("setup: %v\n%s", err, se.output())
		}
	case <-time.After(limit):
		_ = se.cmd.Process.Kill()
		se.t.Fatalf("setup did not finish:\n%s", se.output())
	}
	return se.output()
}

func (se *session) output() string {
	se.mu.Lock()
	defer se.mu.Unlock()
	return se.out.String()
}

func TestSetupGuidedOnTerminal(t *testing.T) {
	srv := testenv.MinIO(t)
	db := testenv.MariaDB(t)
	dbName := db.NewDatabase(t, "setupwp")
	db.Exec(t, dbName, "CREATE TABLE wp_posts (id INT PRIMARY KEY, title TEXT); INSERT INTO wp_posts VALUES (1, 'hello from setup')")

	h := newSetupHost(t)
	shop := h.site("shop", map[string]string{
		"index.php":                     "<?php require 'wp-blog-header.php';",
		"wp-content/uploads/photo.jpg":  strings.Repeat("jpeg", 1000),
		"wp-content/cache/page-1.html":  "cached page",
		"wp-content/debug.log":          "a log",
		"wp-content/themes/t/style.css": "body{}",
		"wp-config.php": fmt.Sprintf("<?php\ndefine( 'DB_NAME', '%s' );\ndefine( 'DB_USER', '%s' );\ndefine( 'DB_PASSWORD', '%s' );\ndefine( 'DB_HOST', '127.0.0.1:%d' );\n$table_prefix = 'wp_';\n",
			// The test password holds ' and \, escaped as PHP wants.
			dbName, db.User, strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db.Password), db.Port),
	})
	// An application found through an nginx site: its public/ root
	// becomes the application's folder.
	app := filepath.Join(h.root, "srv", "app")
	for rel, data := range map[string]string{"public/index.php": "<?php", "composer.json": "{}", "node_modules/x/index.js": "x"} {
		p := filepath.Join(app, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nginx := filepath.Join(h.root, "nginx")
	if err := os.MkdirAll(nginx, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nginx, "app"), []byte("server {\n  listen 80;\n  root "+filepath.Join(app, "public")+";\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kitFile := filepath.Join(h.root, "root", "escrow-kit.txt")
	if err := os.MkdirAll(filepath.Dir(kitFile), 0o700); err != nil {
		t.Fatal(err)
	}
	bucket := fmt.Sprintf("setup-guided-%d", time.Now().UnixNano())

	cmd := exec.Command(escrowBin, h.setupArgs("--kit-out", kitFile, "--retry-for", "2s")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TERM=dumb"}
	se := startSession(t, cmd)

	// A wrong secret first: the store refuses it and setup asks again.
	se.answer("Repository address: ", srv.URL(bucket, "site"))
	se.answer("S3 access key ID: ", srv.AccessKey)
	se.answerSecret("S3 secret access key (not shown): ", "not-the-secret")
	se.answer("Region (empty: us-east-1): ", "")
	se.answer("Use a bucket with Object Lock [y/N]: ", "n")
	se.expect("That did not work: ")
	se.expect("access")
	se.answer("Repository address ["+srv.URL(bucket, "site")+"]: ", "")
	se.answer("S3 access key ID ["+srv.AccessKey+"]: ", "")
	se.answerSecret("S3 secret access key (not shown; empty keeps the current one): ", srv.SecretKey)
	se.answer("Region (empty: us-east-1): ", "")
	se.answer("Use a bucket with Object Lock [y/N]: ", "")
	se.expect("The store answers and the credentials work.")

	se.answer("Back up "+app+" (found in "+filepath.Join(nginx, "app")+")? [Y/n]: ", "y")
	se.answer("Leave out (comma-separated, - for none) [", "node_modules")
	se.answer("Back up "+shop+" (found in "+h.www+")? [Y/n]: ", "")
	se.answer("Leave out (comma-separated, - for none) [*.log, node_modules, wp-content/cache", "")
	se.answer("Other directories to back up (comma-separated, - for none): ", "")
	se.answer("Dump mysql "+dbName+" as "+db.User+" on 127.0.0.1:", "y")
	se.answer("Write the kit to ["+kitFile+"]: ", "")
	se.answer("Put the S3 secret key in the kit, so the kit alone restores? [Y/n]: ", "n")
	se.expect("Your recovery kit:")
	se.answer("Have you stored the recovery kit off this server? [y/N]: ", "y")
	se.expect("Recorded the recovery kit as stored off this server.")
	se.expect("First backup:")

	out := se.finish(5 * time.Minute)
	t.Logf("terminal:\n%s", out)
	for _, secret := range []string{srv.SecretKey, "not-the-secret", db.Password} {
		if strings.Contains(out, secret) {
			t.Errorf("the terminal showed a secret (%d characters)", len(secret))
		}
	}
	if !strings.Contains(out, "Setup is done") {
		t.Errorf("setup did not end with its summary")
	}

	// The configuration: private, in a private folder, with what was
	// chosen and the database's password in a file of its own.
	if m := mode(t, h.cfg); m != 0o600 {
		t.Errorf("configuration mode %04o", m)
	}
	if m := mode(t, h.etc); m != 0o700 {
		t.Errorf("configuration folder mode %04o", m)
	}
	cfg, err := config.Load(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sources) != 2 || cfg.Sources[0].Path != app || cfg.Sources[1].Path != shop || cfg.Repository != srv.URL(bucket, "site") {
		t.Fatalf("configuration: %+v", cfg)
	}
	if strings.Join(cfg.Sources[0].Exclude, ",") != "node_modules" || !strings.Contains(strings.Join(cfg.Sources[1].Exclude, ","), "wp-content/cache") {
		t.Errorf("excludes: %q, %q", cfg.Sources[0].Exclude, cfg.Sources[1].Exclude)
	}
	if len(cfg.Databases) != 1 || cfg.Databases[0].Databases[0] != dbName || cfg.Databases[0].Port != db.Port {
		t.Fatalf("databases: %+v", cfg.Databases)
	}
	for _, f := range []string{cfg.PasswordFile, cfg.S3.SecretAccessKeyFile, cfg.Databases[0].PasswordFile} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s mode %04o", f, m)
		}
	}
	if pw, _ := cfg.Databases[0].Password(); pw != db.Password {
		t.Error("the database password file does not hold wp-config.php's password")
	}

	// The kit (0600) opens the repository with the S3 credential from the
	// environment, as on a fresh machine; the confirmation names it.
	k := readKit(t, kitFile)
	if k.SecretAccessKey != "" || k.AccessKeyID != srv.AccessKey {
		t.Errorf("kit credential: %q", k.AccessKeyID)
	}
	c, ok, err := kit.ReadConfirmation(h.state)
	if !ok || err != nil || c.RepositoryID != k.RepositoryID {
		t.Errorf("kit confirmation: %+v %v %v", c, ok, err)
	}
	rc := &cli{t: t, env: append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, srv.Env()...)}
	snaps := rc.ok("snapshots", "--kit", kitFile, "--json")
	for _, want := range []string{app, shop, "db:mysql"} {
		if !strings.Contains(snaps, want) {
			t.Errorf("no snapshot of %s:\n%s", want, snaps)
		}
	}
	// The database's dump holds its rows.
	dump := rc.ok("restore-db", "--kit", kitFile, "latest", dbName, "--stdout")
	if !strings.Contains(dump, "hello from setup") {
		t.Errorf("the dump lacks the table's row:\n%.2000s", dump)
	}
	// The first backup left out what was excluded and dumped the database.
	ls := rc.ok("ls", "--kit", kitFile, "latest", "--path", shop)
	if strings.Contains(ls, "wp-content/cache") || strings.Contains(ls, "debug.log") || !strings.Contains(ls, "photo.jpg") {
		t.Errorf("the site's snapshot:\n%s", ls)
	}

	// A second guided run proposes what the first chose: accepting every
	// default keeps the configuration, the password and the repository.
	password, _ := os.ReadFile(cfg.PasswordFile)
	before, _ := os.ReadFile(h.cfg)
	cmd = exec.Command(escrowBin, h.setupArgs("--kit-out", kitFile, "--retry-for", "2s")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TERM=dumb"}
	se = startSession(t, cmd)
	se.answer("Repository address ["+srv.URL(bucket, "site")+"]: ", "")
	se.answer("S3 access key ID ["+srv.AccessKey+"]: ", "")
	se.answerSecret("S3 secret access key (not shown; empty keeps the current one): ", "")
	se.answer("Region (empty: us-east-1): ", "")
	se.answer("Use a bucket with Object Lock [y/N]: ", "")
	se.answer("Back up "+app, "")
	se.answer("Leave out (comma-separated, - for none) [node_modules]: ", "")
	se.answer("Back up "+shop, "")
	se.answer("Leave out (comma-separated, - for none) [", "")
	se.answer("Other directories to back up (comma-separated, - for none): ", "")
	se.answer("Dump mysql "+dbName, "")
	se.answer("Write the kit to ["+kitFile+"]: ", "")
	se.answer("Put the S3 secret key in the kit, so the kit alone restores? [Y/n]: ", "n")
	se.expect("Opened the existing repository " + k.RepositoryID[:10])
	se.answer("Have you stored the recovery kit off this server? [y/N]: ", "y")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("second setup: %v\n%s", err, se.output())
	}
	if again, _ := os.ReadFile(cfg.PasswordFile); string(again) != string(password) {
		t.Error("the second run changed the password")
	}
	if after, _ := os.ReadFile(h.cfg); string(after) != string(before) {
		t.Errorf("accepting every default changed the configuration:\n%s\nwas:\n%s", after, before)
	}
	if k2 := readKit(t, kitFile); k2.RepositoryID != k.RepositoryID {
		t.Errorf("the second kit is for repository %s", k2.RepositoryID)
	}
}

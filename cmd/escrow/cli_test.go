//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// backupCycle runs the user's whole story against one repository address:
// init, back up, list, change, back up again, restore, verify, dump.
func backupCycle(t *testing.T, c *cli) {
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 1, 12)
	c.ok("init")

	out := c.ok("backup", src, "--tag", "site", "--exclude", "cache")
	if !strings.Contains(out, "snapshot ") || !strings.Contains(out, "new") {
		t.Fatalf("backup summary missing: %s", out)
	}
	// Unchanged: nothing read again.
	out = c.ok("backup", src, "--tag", "site", "--exclude", "cache")
	if !strings.Contains(out, "Read:   0 B") {
		t.Fatalf("unchanged re-backup read data: %s", out)
	}
	if err := os.WriteFile(filepath.Join(src, "wp-config.php"), []byte("<?php define('DB_NAME','shop2');\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	out = c.ok("backup", src, "--tag", "site", "--exclude", "cache")
	if !strings.Contains(out, "1 changed") {
		t.Fatalf("want one changed file: %s", out)
	}
	dump := bytes.Repeat([]byte("INSERT INTO t VALUES (1,'row');\n"), 100000)
	if r := c.run(dump, "backup", "--stdin", "--stdin-filename", "databases/shop.sql", "--tag", "db"); r.code != 0 {
		t.Fatalf("stdin backup: %d %s", r.code, r.stderr)
	}

	snaps := c.snapshots()
	if len(snaps) != 4 || snaps[3].Paths[0] != "/databases/shop.sql" {
		t.Fatalf("snapshots: %+v", snaps)
	}
	ls := c.ok("ls", "latest", "--tag", "site", filepath.Join(src, "wp-content"))
	if !strings.Contains(ls, "video.mp4") || strings.Contains(ls, "wp-config.php") {
		t.Fatalf("ls of wp-content: %s", ls)
	}
	if ls := c.ok("ls", "latest", "--tag", "site", src); strings.Contains(ls, "cache") {
		t.Fatalf("excluded cache listed: %s", ls)
	}

	want := digest(t, src)
	delete(want, "cache")
	delete(want, "cache/x.tmp")
	target := t.TempDir()
	out = c.ok("restore", "latest", "--tag", "site", "--target", target, "--verify")
	if !strings.Contains(out, "verified") {
		t.Fatalf("restore did not verify: %s", out)
	}
	restored := filepath.Join(target, src)
	sameTree(t, want, digest(t, restored))
	var a, b syscall.Stat_t
	_ = syscall.Stat(filepath.Join(restored, "bin/run.sh"), &a)
	_ = syscall.Stat(filepath.Join(restored, "bin/run-hard.sh"), &b)
	if a.Ino != b.Ino {
		t.Error("hard link was restored as two files")
	}
	// Running it again finds everything in place.
	out = c.ok("restore", "latest", "--tag", "site", "--target", target)
	if !strings.Contains(out, "already correct") {
		t.Fatalf("second restore rewrote files: %s", out)
	}
	// A single file.
	one := t.TempDir()
	c.ok("restore", "latest", "--tag", "site", "--target", one, "--include", filepath.Join(src, "wp-config.php"))
	if got, _ := os.ReadFile(filepath.Join(one, src, "wp-config.php")); !strings.Contains(string(got), "shop2") {
		t.Fatalf("single-file restore: %q", got)
	}
	if got := c.ok("dump", "latest", "--tag", "db", "databases/shop.sql"); got != string(dump) {
		t.Fatalf("dump returned %d bytes, want %d", len(got), len(dump))
	}
	c.ok("check", "--read-data")
}

func TestBackupCycleLocal(t *testing.T) {
	backupCycle(t, newCLI(t, filepath.Join(t.TempDir(), "repo")))
}

func TestBackupCycleS3(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	backupCycle(t, newCLI(t, srv.URL(bucket, "site1"), srv.Env()...))
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(t, filepath.Join(dir, "repo"))
	c.ok("init")

	cases := []struct {
		name string
		env  []string
		args []string
		code int
		msg  string
	}{
		{"no repository", []string{"ESCROW_REPOSITORY=" + filepath.Join(dir, "nothing")}, []string{"snapshots"}, exitNoRepository, "no repository at"},
		{"bad address", []string{"ESCROW_REPOSITORY=ftp://host/x"}, []string{"snapshots"}, exitUsage, "unknown scheme"},
		{"bad s3 address", []string{"ESCROW_REPOSITORY=s3:http://", "AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=b"}, []string{"snapshots"}, exitUsage, "invalid S3 address"},
		{"no s3 credentials", []string{"ESCROW_REPOSITORY=s3:http://127.0.0.1:1/bucket"}, []string{"snapshots"}, exitUsage, "AWS_ACCESS_KEY_ID"},
		{"wrong password", []string{"ESCROW_PASSWORD_FILE=", "ESCROW_PASSWORD=wrong"}, []string{"snapshots"}, exitWrongPass, "wrong password"},
		{"no password", []string{"ESCROW_PASSWORD_FILE="}, []string{"snapshots"}, exitUsage, "ESCROW_PASSWORD_FILE"},
		{"init twice", nil, []string{"init"}, exitUsage, "already exists"},
		{"unknown flag", nil, []string{"snapshots", "--bogus"}, exitUsage, "unknown flag"},
		{"store down", []string{"ESCROW_REPOSITORY=s3:http://127.0.0.1:1/bucket", "AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=b"}, []string{"--retry-for", "1s", "snapshots"}, exitFailure, "cannot reach the store at s3:http://127.0.0.1:1/bucket"},
		{"no snapshot", nil, []string{"restore", "latest", "--target", dir}, exitFailure, "no matching snapshot"},
		{"nothing to back up", nil, []string{"backup"}, exitUsage, "nothing to back up"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := &cli{t: t, env: append(append([]string(nil), c.env...), tc.env...)}
			r := cc.run(nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.msg)
			}
			// Retries may log warnings first; the verdict is one line.
			if n := strings.Count(r.stderr, "escrow: "); n != 1 || !strings.HasPrefix(r.stderr[strings.LastIndex(r.stderr, "escrow: "):], "escrow: ") || strings.Count(r.stderr[strings.LastIndex(r.stderr, "escrow: "):], "\n") != 1 {
				t.Errorf("want exactly one error line: %q", r.stderr)
			}
		})
	}
}

// A dump command that fails must never become a snapshot.
func TestStdinFromCommandFailure(t *testing.T) {
	c := newCLI(t, filepath.Join(t.TempDir(), "repo"))
	c.ok("init")
	for _, tc := range []struct{ name, script, msg string }{
		{"exit code", "echo partial dump; echo 'access denied for user' >&2; exit 3", "exit status 3"},
		{"killed", "echo partial dump; kill -9 $$", "signal: killed"},
		{"missing program", "", "executable file not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"backup", "--stdin-from-command", "--stdin-filename", "databases/shop.sql", "--", "sh", "-c", tc.script}
			if tc.script == "" {
				args = []string{"backup", "--stdin-from-command", "--", "no-such-dump-tool"}
			}
			r := c.run(nil, args...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.msg) || !strings.Contains(r.stderr, "no snapshot saved") {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
		})
	}
	if n := len(c.snapshots()); n != 0 {
		t.Fatalf("%d snapshots recorded from failed commands", n)
	}
	// The same command succeeding does make a snapshot.
	c.ok("backup", "--stdin-from-command", "--stdin-filename", "databases/shop.sql", "--", "sh", "-c", "echo complete dump")
	if got := c.ok("dump", "latest", "databases/shop.sql"); got != "complete dump\n" {
		t.Fatalf("dump: %q", got)
	}
}

// Unreadable files are listed, the snapshot is saved and tagged, exit 3.
func TestIncompleteBackup(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "site")
	makeSite(t, src, 2, 1)
	secret := filepath.Join(src, "secret.key")
	if err := os.WriteFile(secret, []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	pw := filepath.Join(base, "password")
	if err := os.WriteFile(pw, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "ESCROW_REPOSITORY=" + filepath.Join(base, "repo"), "ESCROW_PASSWORD_FILE=" + pw}}
	c.ok("init")
	if os.Geteuid() != 0 {
		if err := os.Chmod(secret, 0); err != nil {
			t.Fatal(err)
		}
		r := c.run(nil, "backup", src)
		if r.code != exitIncomplete {
			t.Fatalf("exit %d, want %d: %s", r.code, exitIncomplete, r.stderr)
		}
		checkIncomplete(t, c, r.stderr, secret)
		return
	}
	// Root reads everything: run the backup as an unprivileged user who owns
	// everything but the secret.
	setpriv := testenv.RequireBinary(t, "setpriv")
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	chownTree(t, base, 65534, 65534)
	if err := os.Chown(secret, 0, 0); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", escrowBin, "backup", src)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != exitIncomplete {
		t.Fatalf("exit %v, want %d\n%s\n%s", err, exitIncomplete, stdout.String(), stderr.String())
	}
	checkIncomplete(t, c, stderr.String(), secret)
}

func checkIncomplete(t *testing.T, c *cli, stderr, secret string) {
	t.Helper()
	if !strings.Contains(stderr, secret) || !strings.Contains(stderr, "permission denied") {
		t.Fatalf("unreadable path not named: %s", stderr)
	}
	snaps := c.snapshots()
	if len(snaps) != 1 || !contains(snaps[0].Tags, "incomplete") {
		t.Fatalf("snapshot not saved and tagged: %+v", snaps)
	}
	if ls := c.ok("ls", "latest"); strings.Contains(ls, "secret.key") || !strings.Contains(ls, "wp-config.php") {
		t.Fatalf("incomplete snapshot content: %s", ls)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func chownTree(t *testing.T, root string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Permanent S3 errors stop at once with the bucket, the key ID and the fix,
// and never show the secret.
func TestS3PermanentErrors(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	good := newCLI(t, srv.URL(bucket, "site1"), srv.Env()...)
	good.ok("init")

	const badSecret = "not-the-secret-4f9a1c"
	for _, tc := range []struct {
		name string
		env  []string
		want []string
	}{
		{"wrong secret", []string{"AWS_SECRET_ACCESS_KEY=" + badSecret}, []string{bucket, srv.AccessKey, "AWS_SECRET_ACCESS_KEY"}},
		{"unknown key", []string{"AWS_ACCESS_KEY_ID=NOSUCHKEY123", "AWS_SECRET_ACCESS_KEY=" + badSecret}, []string{"NOSUCHKEY123", "AWS_ACCESS_KEY_ID"}},
		{"no such bucket", []string{"ESCROW_REPOSITORY=" + srv.URL("no-such-bucket-x1", "site1")}, []string{"no-such-bucket-x1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &cli{t: t, env: append(append([]string(nil), good.env...), tc.env...)}
			r := c.run(nil, "snapshots")
			if r.code == 0 {
				t.Fatal("succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not mention %q: %s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr+r.stdout, badSecret) || strings.Contains(r.stderr+r.stdout, srv.SecretKey) {
				t.Fatalf("secret leaked: %s", r.stderr)
			}
			if strings.Contains(r.stderr, "retry") {
				t.Errorf("a permanent error was retried: %s", r.stderr)
			}
		})
	}
}

//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/kit"
)

// setupHost is a fake server's tree for escrow setup: a web root with a
// site, the configuration folder and the state directory, all in a
// temporary folder.
type setupHost struct {
	t                          *testing.T
	root, www, etc, state, cfg string
}

func newSetupHost(t *testing.T) *setupHost {
	root := t.TempDir()
	h := &setupHost{t: t, root: root, www: filepath.Join(root, "var", "www"), etc: filepath.Join(root, "etc", "escrow"),
		state: filepath.Join(root, "var", "lib", "escrow")}
	h.cfg = filepath.Join(h.etc, "escrow.yaml")
	return h
}

// site writes a small site below the web root and returns its path.
func (h *setupHost) site(name string, files map[string]string) string {
	h.t.Helper()
	dir := filepath.Join(h.www, name)
	for rel, data := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	return dir
}

// setupArgs are the flags that keep setup inside the fake host.
func (h *setupHost) setupArgs(extra ...string) []string {
	args := []string{"setup", "--config", h.cfg, "--state-dir", h.state,
		"--www-dir", h.www, "--nginx-dir", filepath.Join(h.root, "nginx"), "--apache-dir", filepath.Join(h.root, "apache"), "--no-service"}
	return append(args, extra...)
}

func (h *setupHost) preseed(text string) string {
	h.t.Helper()
	p := filepath.Join(h.root, "preseed.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
	return p
}

func (h *setupHost) config() *config.Config {
	h.t.Helper()
	c, err := config.Load(h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// kitSnapshots lists the snapshots with nothing but the kit, as on a
// fresh machine.
func kitSnapshots(t *testing.T, kitFile string) []snapshotJSON {
	t.Helper()
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}
	var list []snapshotJSON
	if err := json.Unmarshal([]byte(c.ok("snapshots", "--json", "--kit", kitFile)), &list); err != nil {
		t.Fatal(err)
	}
	return list
}

func TestSetupPreseedIsIdempotent(t *testing.T) {
	srv := testenv.MinIO(t)
	h := newSetupHost(t)
	shop := h.site("shop", map[string]string{"index.php": "<?php echo 'shop';", "wp-content/cache/page.html": "cached"})
	blog := h.site("blog", map[string]string{"index.php": "<?php echo 'blog';"})
	kitFile := filepath.Join(h.root, "kits", "customer-42.txt")
	if err := os.MkdirAll(filepath.Dir(kitFile), 0o700); err != nil {
		t.Fatal(err)
	}
	// A bucket that does not exist yet: setup creates it.
	bucket := fmt.Sprintf("setup-new-%d", time.Now().UnixNano())
	preseed := func(sources ...string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "repository: %s\ns3:\n  access_key_id: %s\n  secret_access_key: %s\nhost: customer-42\nsources:\n", srv.URL(bucket, "site"), srv.AccessKey, srv.SecretKey)
		for _, s := range sources {
			fmt.Fprintf(&b, "  - path: %s\n    exclude: [wp-content/cache]\n", s)
		}
		fmt.Fprintf(&b, "kit:\n  file: %s\n", kitFile)
		return h.preseed(b.String())
	}
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}

	// First run: the bucket is created, the password generated here.
	out := c.ok(h.setupArgs("--preseed", preseed(shop), "--yes")...)
	for _, want := range []string{"Generated the repository password", "Created the repository", "Wrote the recovery kit to " + kitFile, "snapshot"} {
		if !strings.Contains(out, want) {
			t.Errorf("first run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, srv.SecretKey) {
		t.Errorf("the S3 secret was printed:\n%s", out)
	}
	cfg := h.config()
	if len(cfg.Sources) != 1 || cfg.Sources[0].Path != shop || cfg.Host != "customer-42" || cfg.StateDir != h.state {
		t.Errorf("first configuration: %+v", cfg)
	}
	for _, f := range []string{h.cfg, cfg.PasswordFile, cfg.S3.SecretAccessKeyFile, kitFile} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, m)
		}
	}
	if m := mode(t, h.etc); m != 0o700 {
		t.Errorf("%s has mode %04o, want 0700", h.etc, m)
	}
	raw, _ := os.ReadFile(h.cfg)
	if strings.Contains(string(raw), srv.SecretKey) {
		t.Error("the configuration holds the S3 secret")
	}
	password, _ := os.ReadFile(cfg.PasswordFile)
	k1 := readKit(t, kitFile)
	if k1.Password+"\n" != string(password) || k1.SecretAccessKey != srv.SecretKey {
		t.Error("the kit does not hold the generated password and the S3 credential")
	}
	snaps := kitSnapshots(t, kitFile)
	if len(snaps) != 1 || snaps[0].Paths[0] != shop || snaps[0].Host != "customer-42" {
		t.Fatalf("snapshots after the first run: %+v", snaps)
	}

	// The owner tunes the file between runs; that stays.
	f, err := os.OpenFile(h.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "limits:\n  parallelism: 3\n")
	f.Close()

	// Second run with another source list: the configuration follows, the
	// password and the repository stay.
	out = c.ok(h.setupArgs("--preseed", preseed(shop, blog), "--yes")...)
	if !strings.Contains(out, "Opened the existing repository") || strings.Contains(out, "Generated") || strings.Contains(out, "Created the repository") {
		t.Errorf("second run output:\n%s", out)
	}
	cfg = h.config()
	if len(cfg.Sources) != 2 || cfg.Sources[1].Path != blog || cfg.Limits.Parallelism != 3 {
		t.Errorf("second configuration: sources %+v, parallelism %d", cfg.Sources, cfg.Limits.Parallelism)
	}
	if again, _ := os.ReadFile(cfg.PasswordFile); string(again) != string(password) {
		t.Error("the second run changed the password")
	}
	k2 := readKit(t, kitFile)
	if k2.RepositoryID != k1.RepositoryID || k2.Password != k1.Password {
		t.Errorf("the second run's kit is for repository %s, the first's for %s", k2.RepositoryID, k1.RepositoryID)
	}
	paths := map[string]bool{}
	for _, sn := range kitSnapshots(t, kitFile) {
		paths[sn.Paths[0]] = true
	}
	if len(paths) != 2 || !paths[blog] {
		t.Errorf("snapshots after the second run are of %v", paths)
	}
}

func TestSetupBadPreseed(t *testing.T) {
	h := newSetupHost(t)
	shop := h.site("shop", map[string]string{"index.php": "<?php"})
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}
	cases := []struct {
		name, text string
		want       []string
	}{
		{"unknown field and wrong kind", "repository: /srv/repo\nsources:\n  - path: " + shop + "\n    excludes: [x]\nservice: maybe\n",
			[]string{"preseed.yaml:4: field excludes not found", "preseed.yaml:5: cannot unmarshal"}},
		{"relative path", "repository: /srv/repo\nsources:\n  - path: " + shop + "\n  - path: www/other\n",
			[]string{"preseed.yaml:4: sources[1].path:"}},
		{"missing directory and kit folder", "repository: /srv/repo\nsources:\n  - path: /nonexistent/site\nkit:\n  file: /nonexistent/kit.txt\n",
			[]string{"preseed.yaml:3: sources[0].path: /nonexistent/site is not a directory", "preseed.yaml:5: kit.file: /nonexistent does not exist"}},
		{"no repository", "sources:\n  - path: " + shop + "\n",
			[]string{"preseed.yaml: repository: missing"}},
		{"unreadable secret file", "repository: s3:http://127.0.0.1:1/bucket/site\ns3:\n  access_key_id: AKID\n  secret_access_key_file: /nonexistent/secret\nsources:\n  - path: " + shop + "\n",
			[]string{"preseed.yaml:4: s3.secret_access_key_file: /nonexistent/secret cannot be read: no such file or directory"}},
		{"bad database", "repository: /srv/repo\ndatabases:\n  - type: oracle\n    databases: [x]\n",
			[]string{"preseed.yaml:3: databases[0].type"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			r := c.run(nil, h.setupArgs("--preseed", h.preseed(tc.text), "--yes")...)
			if r.code != exitUsage {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, exitUsage, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if _, err := os.Stat(h.etc); !os.IsNotExist(err) {
				t.Errorf("a bad preseed wrote %s", h.etc)
			}
		})
	}
}

func TestSetupNeedsTerminalOrYes(t *testing.T) {
	h := newSetupHost(t)
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}
	r := c.run([]byte("s3:https://s3.example.com/bucket\n"), h.setupArgs()...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "asks questions on a terminal; to run it from a script use --preseed FILE --yes") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
}

func TestSetupPreseedWithoutS3Credential(t *testing.T) {
	h := newSetupHost(t)
	shop := h.site("shop", map[string]string{"index.php": "<?php"})
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}
	// The service does not get the caller's environment, so a credential
	// only there would break it; and a preseed holding a secret should not
	// be readable by everyone.
	p := h.preseed("repository: s3:http://127.0.0.1:1/bucket/site\npassword: a secret\nsources:\n  - path: " + shop + "\n")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.run(nil, h.setupArgs("--preseed", p, "--yes")...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "preseed.yaml: s3: the S3 credential is missing") {
		t.Errorf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "holds secrets and other users of this machine can read it (mode 0644)") || strings.Contains(r.stderr, "a secret") {
		t.Errorf("no warning about the preseed's mode, or the secret shown:\n%s", r.stderr)
	}
}

func TestSetupStoreUnreachable(t *testing.T) {
	h := newSetupHost(t)
	shop := h.site("shop", map[string]string{"index.php": "<?php"})
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret-from-env"}}
	// Nothing listens on port 1; the flags and environment give every answer.
	kitOut := filepath.Join(h.root, "escrow-kit.txt")
	r := c.run(nil, h.setupArgs("--yes", "--kit-out", kitOut, "--retry-for", "1s", "--repo", "s3:http://127.0.0.1:1/bucket/site", "--source", shop)...)
	if r.code != exitSetupStore {
		t.Fatalf("exit %d, want %d\n%s%s", r.code, exitSetupStore, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "cannot reach the store at") || strings.Contains(r.stdout+r.stderr, "secret-from-env") {
		t.Errorf("stderr: %s", r.stderr)
	}

	// Credentials the store refuses are the same exit code.
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	c.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=not-the-secret"}
	r = c.run(nil, h.setupArgs("--yes", "--kit-out", kitOut, "--retry-for", "1s", "--repo", srv.URL(bucket, "site"), "--source", shop)...)
	if r.code != exitSetupStore {
		t.Fatalf("refused credential: exit %d, want %d\n%s%s", r.code, exitSetupStore, r.stdout, r.stderr)
	}
}

func TestSetupKitCommandAndRepositoryProblems(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	h := newSetupHost(t)
	shop := h.site("shop", map[string]string{"index.php": "<?php"})
	received := filepath.Join(h.root, "received-kit")
	argvLog := filepath.Join(h.root, "argv")
	text := fmt.Sprintf(`repository: %s
s3:
  access_key_id: %s
  secret_access_key: %s
password: chosen by the reseller
sources:
  - path: %s
kit:
  command: [sh, -c, 'echo "$0 $*" > %s; umask 077; cat > %s', kit-receiver]
  include_credentials: false
first_backup: false
`, srv.URL(bucket, "site"), srv.AccessKey, srv.SecretKey, shop, argvLog, received)
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}
	out := c.ok(h.setupArgs("--preseed", h.preseed(text), "--yes")...)
	if !strings.Contains(out, "Handed the recovery kit to sh") || !strings.Contains(out, "Recorded the recovery kit as stored") {
		t.Errorf("output:\n%s", out)
	}
	k := readKit(t, received)
	if k.Password != "chosen by the reseller" || k.SecretAccessKey != "" || k.AccessKeyID != srv.AccessKey {
		t.Errorf("kit from the command: %+v", k)
	}
	if argv, _ := os.ReadFile(argvLog); strings.Contains(string(argv), "chosen by the reseller") {
		t.Errorf("the kit was on the command line: %s", argv)
	}
	if _, ok, err := kit.ReadConfirmation(h.state); !ok || err != nil {
		t.Errorf("the kit handed to a command is not confirmed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(h.root, "root", "escrow-kit.txt")); !os.IsNotExist(err) {
		t.Error("the kit was also written to --kit-out's default although the preseed names a command")
	}

	// A kit command that fails is an error naming it.
	bad := strings.Replace(text, "command: [sh, -c, 'echo", "command: [sh, -c, 'exit 9; echo", 1)
	r := c.run(nil, h.setupArgs("--preseed", h.preseed(bad), "--yes")...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "the kit command sh failed") {
		t.Errorf("failing kit command: exit %d\n%s", r.code, r.stderr)
	}

	// Another host with another password finds the repository: it is
	// neither created again nor opened, and no password file is left.
	h2 := newSetupHost(t)
	h2.site("shop", map[string]string{"index.php": "<?php"})
	other := strings.Replace(text, "password: chosen by the reseller", "password: another one", 1)
	other = strings.Replace(other, shop, filepath.Join(h2.www, "shop"), 1)
	r = c.run(nil, h2.setupArgs("--preseed", h2.preseed(other), "--yes")...)
	if r.code != exitSetupRepo || !strings.Contains(r.stderr, "a repository already exists at") || !strings.Contains(r.stderr, "never created again") {
		t.Errorf("wrong password: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(h2.etc, "password")); !os.IsNotExist(err) {
		t.Errorf("the rejected password file was left: %v", err)
	}
	if strings.Contains(r.stderr, "another one") {
		t.Errorf("the password was printed: %s", r.stderr)
	}

	// A password file that differs from the preseed's is kept, not replaced.
	r = c.run(nil, h.setupArgs("--preseed", h.preseed(other), "--yes")...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "differs from the one in the password file") {
		t.Errorf("differing password: exit %d\n%s", r.code, r.stderr)
	}
}

func TestSetupServiceInstall(t *testing.T) {
	h := newSetupHost(t)
	shop := h.site("shop", map[string]string{"index.php": "<?php"})
	repoDir := filepath.Join(h.root, "srv", "repo")
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}
	args := func(root string) []string {
		a := h.setupArgs("--yes", "--kit-out", filepath.Join(h.root, "escrow-kit.txt"), "--repo", repoDir, "--source", shop, "--no-backup", "--service-root", root)
		// --no-service from setupArgs would skip the installation.
		for i, s := range a {
			if s == "--no-service" {
				return append(a[:i], a[i+1:]...)
			}
		}
		return a
	}
	// The service's files go below a root of their own: nothing is
	// installed on the machine running the test.
	root := filepath.Join(h.root, "image")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	out := c.ok(args(root)...)
	if !strings.Contains(out, "Installed the escrow service") {
		t.Errorf("output:\n%s", out)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc", "systemd", "system", "escrow.service"))
	if err != nil || !strings.Contains(string(unit), "agent --config "+h.cfg) {
		t.Errorf("unit file: %v\n%s", err, unit)
	}

	// A service that cannot be installed is exit code 5.
	file := filepath.Join(h.root, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := c.run(nil, args(file)...)
	if r.code != exitSetupService || !strings.Contains(r.stderr, "install the service") {
		t.Errorf("exit %d, want %d\n%s", r.code, exitSetupService, r.stderr)
	}
}

// TestSetupFollowsTheAgentsFirstBackup runs the agent as the service would
// and follows its first backup as setup does after starting the service.
func TestSetupFollowsTheAgentsFirstBackup(t *testing.T) {
	h := newSetupHost(t)
	shop := h.site("shop", map[string]string{"index.php": "<?php", "wp-content/uploads/a.jpg": strings.Repeat("x", 5000)})
	c := &cli{t: t, env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}}
	c.ok(h.setupArgs("--yes", "--kit-out", filepath.Join(h.root, "kit.txt"), "--repo", filepath.Join(h.root, "repo"), "--source", shop, "--no-backup")...)

	since := time.Now()
	agentCmd := exec.Command(escrowBin, "agent", "--config", h.cfg)
	var agentOut bytes.Buffer
	agentCmd.Stdout, agentCmd.Stderr = &agentOut, &agentOut
	if err := agentCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agentCmd.Process.Signal(syscall.SIGTERM)
		_ = agentCmd.Wait()
	})
	var out, errs bytes.Buffer
	g := &globalOptions{env: env{stdout: &out, stderr: &errs, getenv: func(string) string { return "" }}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := followServiceBackup(ctx, g, h.config(), since, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "1 of 1 sources and databases saved") || !strings.Contains(out.String(), shop) || strings.Contains(out.String(), "still running") {
		t.Errorf("output:\n%s\nstderr:\n%s\nagent:\n%s", out.String(), errs.String(), agentOut.String())
	}
}

//go:build unix

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/kit"
)

// freshCLI is a machine with nothing but escrow: only PATH and HOME.
func freshCLI(t *testing.T, extra ...string) *cli {
	return &cli{t: t, env: append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, extra...)}
}

func readKit(t *testing.T, name string) *kit.Kit {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
	}
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kit.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// initWithID runs init and returns the repository ID.
func (c *cli) initWithID() string {
	c.t.Helper()
	var out struct{ ID string }
	if err := json.Unmarshal([]byte(c.ok("init", "--json")), &out); err != nil || len(out.ID) != 64 {
		c.t.Fatalf("init --json: %v %+v", err, out)
	}
	return out.ID
}

// kitRestore backs up a site, writes the kit, and restores from the kit
// alone on a fresh machine; it returns the kit file.
func kitRestore(t *testing.T, c *cli, kitArgs []string, fresh *cli) string {
	id := c.initWithID()
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 11, 2)
	c.ok("backup", src)

	file := filepath.Join(t.TempDir(), "escrow-kit.txt")
	page := filepath.Join(t.TempDir(), "escrow-kit.html")
	r := c.run(nil, append([]string{"kit", "--out", file, "--html", page}, kitArgs...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "escrow kit confirm") {
		t.Fatalf("escrow kit: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	k := readKit(t, file)
	if k.RepositoryID != id || k.Password != "correct horse battery staple" || k.Host == "" || k.Created.IsZero() || len(k.KeyID) != 64 {
		t.Fatalf("kit: %+v", k)
	}
	if fi, err := os.Stat(page); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("page: %v %v", fi, err)
	}
	if html, _ := os.ReadFile(page); !strings.Contains(string(html), "data:image/png;base64,") || !strings.Contains(string(html), id) {
		t.Error("the page lacks the QR code or the repository ID")
	}

	target := t.TempDir()
	out := fresh.ok("restore", "latest", "--kit", file, "--target", target, "--verify")
	if !strings.Contains(out, "verified") {
		t.Fatalf("restore: %s", out)
	}
	sameTree(t, digest(t, src), digest(t, filepath.Join(target, src)))
	return file
}

func TestKitRestoreLocal(t *testing.T) {
	c := newCLI(t, filepath.Join(t.TempDir(), "repo"))
	kitRestore(t, c, nil, freshCLI(t))
}

func TestKitRestoreS3(t *testing.T) {
	srv := testenv.MinIO(t)
	c := newCLI(t, srv.URL(srv.NewBucket(t), "site1"), srv.Env()...)
	file := kitRestore(t, c, []string{"--include-credentials"}, freshCLI(t))
	if k := readKit(t, file); k.AccessKeyID != srv.AccessKey || k.SecretAccessKey != srv.SecretKey || !strings.HasPrefix(k.Repository, "s3:http://") {
		t.Fatalf("kit with credentials: %+v", k)
	}

	// By default the kit names the credential but leaves its secret out.
	plain := filepath.Join(t.TempDir(), "kit.txt")
	c.ok("kit", "--out", plain)
	k := readKit(t, plain)
	if k.AccessKeyID != srv.AccessKey || k.SecretAccessKey != "" {
		t.Fatalf("kit without credentials: %+v", k)
	}
	if text, _ := os.ReadFile(plain); strings.Contains(string(text), srv.SecretKey) {
		t.Fatal("the secret is in a kit made without --include-credentials")
	}
	r := freshCLI(t).run(nil, "snapshots", "--kit", plain)
	if r.code != exitUsage || !strings.Contains(r.stderr, "does not hold its secret") || !strings.Contains(r.stderr, srv.AccessKey) {
		t.Fatalf("fresh machine, kit without secret: exit %d %s", r.code, r.stderr)
	}
	freshCLI(t, srv.Env()...).ok("snapshots", "--kit", plain)

	// Another credential (the owner's read-only key; here the only one
	// MinIO has) goes in the kit once it has opened the repository.
	withRead := filepath.Join(t.TempDir(), "kit.txt")
	c.ok("kit", "--out", withRead, "--read-access-key-id", srv.AccessKey, "--read-secret-file", writePassword(t, srv.SecretKey))
	if k := readKit(t, withRead); k.SecretAccessKey != srv.SecretKey {
		t.Fatalf("kit with a read credential: %+v", k)
	}
	freshCLI(t).ok("snapshots", "--kit", withRead)
	badRead := filepath.Join(t.TempDir(), "kit.txt")
	r = c.run(nil, "--retry-for", "2s", "kit", "--out", badRead, "--read-access-key-id", srv.AccessKey, "--read-secret-file", writePassword(t, "not-the-secret"))
	if r.code == 0 || !strings.Contains(r.stderr, "the credential "+srv.AccessKey+" cannot") {
		t.Fatalf("kit with a wrong read credential: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(badRead); !os.IsNotExist(err) {
		t.Fatal("a kit was written with a credential that cannot read")
	}
}

func TestKitFlagsOverride(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(t, filepath.Join(dir, "repo"))
	c.ok("init")
	file := filepath.Join(dir, "kit.txt")
	c.ok("kit", "--out", file)
	// A copy of the repository elsewhere: --repo wins over the kit's address.
	if out, err := exec.Command("cp", "-a", filepath.Join(dir, "repo"), filepath.Join(dir, "copy")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	if err := os.Rename(filepath.Join(dir, "repo"), filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	fresh := freshCLI(t)
	if r := fresh.run(nil, "snapshots", "--kit", file); r.code != exitNoRepository {
		t.Fatalf("kit address gone: exit %d %s", r.code, r.stderr)
	}
	fresh.ok("snapshots", "--kit", file, "--repo", filepath.Join(dir, "copy"))
	// So does a password from the environment.
	wrong := freshCLI(t, "ESCROW_PASSWORD=wrong")
	if r := wrong.run(nil, "snapshots", "--kit", file, "--repo", filepath.Join(dir, "copy")); r.code != exitWrongPass {
		t.Fatalf("password from the environment: exit %d %s", r.code, r.stderr)
	}
	// Another repository with the same password is not the kit's.
	other := newCLI(t, filepath.Join(dir, "other"))
	other.ok("init")
	r := fresh.run(nil, "snapshots", "--kit", file, "--repo", filepath.Join(dir, "other"))
	if r.code != exitFailure || !strings.Contains(r.stderr, "is for repository") {
		t.Fatalf("kit of another repository: exit %d %s", r.code, r.stderr)
	}
}

func TestKitRefusals(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(t, filepath.Join(dir, "repo"))
	c.ok("init")
	file := filepath.Join(dir, "kit.txt")

	// A wrong password writes nothing.
	wrong := &cli{t: t, env: append(append([]string(nil), c.env...), "ESCROW_PASSWORD_FILE=", "ESCROW_PASSWORD=wrong")}
	if r := wrong.run(nil, "kit", "--out", file, "--html", file+".html"); r.code != exitWrongPass {
		t.Fatalf("kit with a wrong password: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a kit was written with a wrong password: %v", err)
	}
	if _, err := os.Stat(file + ".html"); !os.IsNotExist(err) {
		t.Fatalf("a page was written with a wrong password: %v", err)
	}

	c.ok("kit", "--out", file)
	if r := c.run(nil, "kit", "--out", file); r.code != exitUsage || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("overwrite without --force: exit %d %s", r.code, r.stderr)
	}
	c.ok("kit", "--out", file, "--force")
	readKit(t, file)
	if r := c.run(nil, "kit", "--include-credentials"); r.code != exitUsage || !strings.Contains(r.stderr, "no S3 credential") {
		t.Fatalf("--include-credentials for a directory: exit %d %s", r.code, r.stderr)
	}

	// escrow kit > FILE: the shell's file is made private.
	redirected := filepath.Join(dir, "redirected.txt")
	f, err := os.OpenFile(redirected, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(escrowBin, "kit")
	var stderr strings.Builder
	cmd.Env, cmd.Stdout, cmd.Stderr = c.env, f, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("escrow kit > file: %v %s", err, stderr.String())
	}
	f.Close()
	readKit(t, redirected)

	// Damaged kits.
	good, _ := os.ReadFile(file)
	for _, tc := range []struct{ name, text, msg string }{
		{"unknown version", strings.Replace(string(good), "kit v1", "kit v3", 1), "version 3 recovery kit"},
		{"not a kit", "hello", "not an escrow recovery kit"},
		{"no password", strings.Replace(string(good), "password:", "passwrd:", 1), "the password line is missing"},
		{"cut short", string(good[:len(good)/2]), "damaged recovery kit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(t.TempDir(), "kit.txt")
			if err := os.WriteFile(bad, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			r := freshCLI(t).run(nil, "snapshots", "--kit", bad)
			if r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) || !strings.Contains(r.stderr, bad) {
				t.Fatalf("exit %d, stderr %q; want exit 2 mentioning %q", r.code, r.stderr, tc.msg)
			}
		})
	}
}

// writeAgentStatus leaves the status file of an agent that ran and stopped.
func writeAgentStatus(t *testing.T, dir, repository string) {
	t.Helper()
	st := agent.Status{PID: 1, Version: "test", Repository: repository, Host: "web1", Stopped: true, Updated: time.Now()}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, agent.StatusFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKitConfirmStatus(t *testing.T) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	c := newCLI(t, repoDir)
	id := c.initWithID()
	state := filepath.Join(dir, "state")
	site := filepath.Join(dir, "site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimPrefix(c.env[3], "ESCROW_PASSWORD_FILE=")
	cfg := filepath.Join(dir, "escrow.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "repository: %s\npassword_file: %s\nhost: web1\nsources:\n  - path: %s\nstate_dir: %s\n", repoDir, pw, site, state), 0o600); err != nil {
		t.Fatal(err)
	}
	writeAgentStatus(t, state, repoDir)
	// The agent's own view: its configuration, nothing from the environment.
	server := freshCLI(t)
	status := func() []string {
		t.Helper()
		r := server.run(nil, "status", "--config", cfg, "--json")
		var st statusJSON
		if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != exitUnhealthy {
			t.Fatalf("status: exit %d %v\n%s\n%s", r.code, err, r.stdout, r.stderr)
		}
		return st.Problems
	}
	if p := strings.Join(status(), "\n"); !strings.Contains(p, kit.Warning) {
		t.Fatalf("status before confirming: %q", p)
	}

	file := filepath.Join(dir, "kit.txt")
	server.ok("kit", "--config", cfg, "--out", file)
	if k := readKit(t, file); k.Host != "web1" || k.RepositoryID != id || k.Repository != repoDir {
		t.Fatalf("kit from the configuration: %+v", k)
	}
	if p := strings.Join(status(), "\n"); !strings.Contains(p, kit.Warning) {
		t.Fatalf("status after writing, before confirming: %q", p)
	}
	// Confirming with the stored kit checks the kit itself.
	out := server.ok("kit", "confirm", "--config", cfg, "--kit", file)
	if !strings.Contains(out, id[:10]) || !strings.Contains(out, state) {
		t.Fatalf("confirm: %s", out)
	}
	if p := strings.Join(status(), "\n"); strings.Contains(p, "recovery kit") {
		t.Fatalf("status after confirming: %q", p)
	}
	if when, ok, err := kit.Confirmed(state, id); !ok || err != nil || time.Since(when) > time.Minute {
		t.Fatalf("Confirmed: %v %v %v", when, ok, err)
	}

	// An agent pointed at another repository warns again.
	writeAgentStatus(t, state, filepath.Join(dir, "elsewhere"))
	if p := strings.Join(status(), "\n"); !strings.Contains(p, "recovery kit confirmed for "+repoDir) {
		t.Fatalf("status for another repository: %q", p)
	}
	// A kit of another repository does not confirm this one.
	other := newCLI(t, filepath.Join(dir, "other"))
	other.ok("init")
	otherKit := filepath.Join(dir, "other-kit.txt")
	other.ok("kit", "--out", otherKit)
	if r := server.run(nil, "kit", "confirm", "--config", cfg, "--kit", otherKit); r.code != exitUsage || !strings.Contains(r.stderr, "not the one the agent") {
		t.Fatalf("confirm with another repository's kit: exit %d %s", r.code, r.stderr)
	}
	// --state-dir with the repository from the environment.
	state2 := filepath.Join(dir, "state2")
	c.ok("kit", "confirm", "--state-dir", state2)
	if _, ok, err := kit.Confirmed(state2, id); !ok || err != nil {
		t.Fatalf("confirm --state-dir: %v %v", ok, err)
	}
	if fi, err := os.Stat(filepath.Join(state2, kit.ConfirmFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("confirmation file: %v %v", fi, err)
	}
}

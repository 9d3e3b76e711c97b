package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
)

type keyJSON struct {
	ID       string `json:"id"`
	Current  bool   `json:"current"`
	Username string `json:"username"`
	Hostname string `json:"hostname"`
	Problem  string `json:"problem"`
}

func (c *cli) keys() []keyJSON {
	c.t.Helper()
	var keys []keyJSON
	if err := json.Unmarshal([]byte(c.ok("key", "list", "--json")), &keys); err != nil {
		c.t.Fatal(err)
	}
	return keys
}

// withPassword is c opening the repository with another password.
func (c *cli) withPassword(t *testing.T, password string) *cli {
	return &cli{t: t, env: append(append([]string(nil), c.env...), "ESCROW_PASSWORD_FILE="+writePassword(t, password))}
}

func writePassword(t *testing.T, password string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(f, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// resticFor runs the real restic against the repository c uses, with the
// given password.
type resticFor struct {
	t   *testing.T
	env []string // RESTIC_REPOSITORY and credentials
}

func newResticFor(t *testing.T, c *cli) resticFor {
	r := resticFor{t: t}
	for _, kv := range c.env {
		switch {
		case strings.HasPrefix(kv, "ESCROW_REPOSITORY="):
			r.env = append(r.env, "RESTIC_REPOSITORY="+strings.TrimPrefix(kv, "ESCROW_REPOSITORY="))
		case strings.HasPrefix(kv, "AWS_"):
			r.env = append(r.env, kv)
		}
	}
	return r
}

func (r resticFor) run(password string, args ...string) (string, error) {
	r.t.Helper()
	bin := testenv.RequireBinary(r.t, "restic")
	cmd := exec.Command(bin, append([]string{"--no-cache"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + r.t.TempDir(), "RESTIC_PASSWORD_FILE=" + writePassword(r.t, password)}, r.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r resticFor) opens(password string) bool {
	r.t.Helper()
	out, err := r.run(password, "cat", "config")
	if err != nil && !strings.Contains(out, "wrong password") {
		r.t.Fatalf("restic cat config: %v\n%s", err, out)
	}
	return err == nil
}

// sameAsRestic checks that restic lists the keys escrow lists.
func (r resticFor) sameAsRestic(password string, ours []keyJSON) {
	r.t.Helper()
	out, err := r.run(password, "key", "list", "--json")
	if err != nil {
		r.t.Fatalf("restic key list: %v\n%s", err, out)
	}
	var theirs []struct {
		ID       string `json:"id"`
		Current  bool   `json:"current"`
		UserName string `json:"userName"`
		HostName string `json:"hostName"`
	}
	if err := json.Unmarshal([]byte(out), &theirs); err != nil {
		r.t.Fatalf("restic key list: %v\n%s", err, out)
	}
	if len(theirs) != len(ours) {
		r.t.Fatalf("restic lists %d keys, escrow %d:\n%s", len(theirs), len(ours), out)
	}
	for _, o := range ours {
		found := false
		for _, k := range theirs {
			if strings.HasPrefix(o.ID, k.ID) && k.UserName == o.Username && k.HostName == o.Hostname && k.Current == o.Current {
				found = true
			}
		}
		if !found {
			r.t.Errorf("restic does not list escrow's key %+v:\n%s", o, out)
		}
	}
}

func keyCycle(t *testing.T, c *cli) {
	const first = "correct horse battery staple" // newCLI's
	rs := newResticFor(t, c)
	c.ok("init")
	keys := c.keys()
	if len(keys) != 1 || !keys[0].Current {
		t.Fatalf("keys after init: %+v", keys)
	}
	firstID := keys[0].ID

	// An owner's offline key.
	c.ok("key", "add", "--new-password-file", writePassword(t, "owner offline"), "--user", "owner", "--host", "offline")
	keys = c.keys()
	if len(keys) != 2 || keys[1].Username != "owner" || keys[1].Hostname != "offline" || keys[1].Current {
		t.Fatalf("keys after add: %+v", keys)
	}
	ownerID := keys[1].ID
	rs.sameAsRestic(first, keys)
	if !rs.opens(first) || !rs.opens("owner offline") {
		t.Fatal("restic does not open the repository with both passwords")
	}
	owner := c.withPassword(t, "owner offline")
	if out := owner.ok("key", "list"); !strings.Contains(out, "*"+ownerID[:8]) || !strings.Contains(out, " "+firstID[:8]) {
		t.Fatalf("key list opened with the owner's password:\n%s", out)
	}

	for _, tc := range []struct {
		name string
		c    *cli
		args []string
		code int
		msg  string
	}{
		{"same password", c, []string{"key", "add", "--new-password-file", writePassword(t, first)}, exitUsage, "choose another"},
		{"no new password", c, []string{"key", "add"}, exitUsage, "never taken from the command line"},
		{"remove the key in use", c, []string{"key", "remove", firstID[:8]}, exitFailure, "the key this command opened the repository with"},
		{"remove no such key", c, []string{"key", "remove", "ffffffffff"}, exitFailure, `no key "ffffffffff"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.c.run(nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) {
				t.Fatalf("exit %d, stderr %q; want exit %d mentioning %q", r.code, r.stderr, tc.code, tc.msg)
			}
		})
	}

	// The owner removes the server's key; the server's password stops working.
	owner.ok("key", "remove", firstID[:8])
	if r := c.run(nil, "snapshots"); r.code != exitWrongPass {
		t.Fatalf("a removed key's password still opens: exit %d %s", r.code, r.stderr)
	}
	if rs.opens(first) {
		t.Fatal("restic still opens with the removed key's password")
	}
	if r := owner.run(nil, "key", "remove", ownerID[:8]); r.code == 0 || !strings.Contains(r.stderr, "only key") {
		t.Fatalf("removing the last key: exit %d, %s", r.code, r.stderr)
	}

	// passwd: the new password replaces the old.
	out := owner.ok("key", "passwd", "--new-password-file", writePassword(t, "owner 2027"))
	if !strings.Contains(out, "replaces "+ownerID[:8]) || !strings.Contains(out, "password_file") {
		t.Fatalf("passwd output: %s", out)
	}
	if r := owner.run(nil, "snapshots"); r.code != exitWrongPass {
		t.Fatalf("the old password still opens after passwd: exit %d", r.code)
	}
	renewed := c.withPassword(t, "owner 2027")
	keys = renewed.keys()
	if len(keys) != 1 || !keys[0].Current || keys[0].ID == ownerID {
		t.Fatalf("keys after passwd: %+v", keys)
	}
	rs.sameAsRestic("owner 2027", keys)
	if rs.opens("owner offline") || !rs.opens("owner 2027") {
		t.Fatal("restic after passwd: want only the new password to open")
	}
	renewed.ok("check")
}

func TestKeyCommandsLocal(t *testing.T) {
	keyCycle(t, newCLI(t, filepath.Join(t.TempDir(), "repo")))
}

func TestKeyCommandsS3(t *testing.T) {
	srv := testenv.MinIO(t)
	keyCycle(t, newCLI(t, srv.URL(srv.NewBucket(t), "keys"), srv.Env()...))
}

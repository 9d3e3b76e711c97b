package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// escrowBin is the binary the tests run as a child process, built once by
// TestMain; tests that kill the process or drop privileges need a real one.
var escrowBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "escrow-bin-")
	if err != nil {
		panic(err)
	}
	escrowBin = filepath.Join(dir, "escrow")
	build := exec.Command("go", "build", "-o", escrowBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build escrow:", err)
		os.Exit(1)
	}
	// Readable by an unprivileged user for the permission tests.
	_ = os.Chmod(dir, 0o755)
	testenv.Main(m, func() { os.RemoveAll(dir) })
}

// cli runs escrow as a child process with a controlled environment.
type cli struct {
	t   *testing.T
	env []string
}

func newCLI(t *testing.T, repoAddr string, extra ...string) *cli {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "ESCROW_REPOSITORY=" + repoAddr, "ESCROW_PASSWORD_FILE=" + pw}
	return &cli{t: t, env: append(env, extra...)}
}

type result struct {
	stdout, stderr string
	code           int
}

func (c *cli) run(stdin []byte, args ...string) result {
	c.t.Helper()
	cmd := exec.Command(escrowBin, args...)
	cmd.Env = c.env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// ok runs a command that must succeed.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(nil, args...)
	if r.code != 0 {
		c.t.Fatalf("escrow %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (c *cli) snapshots() []snapshotJSON {
	c.t.Helper()
	var list []snapshotJSON
	if err := json.Unmarshal([]byte(c.ok("snapshots", "--json")), &list); err != nil {
		c.t.Fatal(err)
	}
	return list
}

// makeSite writes a small website-like tree with the awkward cases.
func makeSite(t *testing.T, root string, seed int64, bigMB int) {
	t.Helper()
	rnd := rand.New(rand.NewSource(seed))
	write := func(rel string, data []byte, mode fs.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 40; i++ {
		write(fmt.Sprintf("wp-content/plugins/p%d/file%d.php", i%5, i), []byte(strings.Repeat(fmt.Sprintf("<?php echo %d; ?>\n", i), 50+i)), 0o644)
	}
	big := make([]byte, bigMB<<20)
	rnd.Read(big)
	write("wp-content/uploads/video.mp4", big, 0o644)
	write("wp-config.php", []byte("<?php define('DB_NAME','shop');\n"), 0o640)
	write("bin/run.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	write("empty.txt", nil, 0o644)
	write("cache/x.tmp", []byte("cached"), 0o644)
	if err := os.Symlink("wp-config.php", filepath.Join(root, "config-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "bin/run.sh"), filepath.Join(root, "bin/run-hard.sh")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(root, "sparse.img"))
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Truncate(8 << 20)
	_, _ = f.WriteAt([]byte("end"), 8<<20-3)
	f.Close()
}

// digest maps each entry below root to its type, mode, size, content hash and
// link target, for comparing a restore with its source.
func digest(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := info.Mode().String()
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x mtime=%d", sha256.Sum256(data), info.ModTime().UnixNano())
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s in restore", k)
		}
	}
}

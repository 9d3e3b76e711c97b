//go:build unix

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// The bad-input suite: each case feeds escrow something wrong and checks the
// documented exit code, a message naming the thing (and the fix), and that
// nothing already stored was lost. docs/reliability.md lists the cases.

// baseline is a repository holding one snapshot that no failure may harm.
type baseline struct {
	c    *cli
	src  string
	snap string
	want map[string]string
}

func newBaseline(t *testing.T, c *cli) *baseline {
	t.Helper()
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 11, 1)
	c.ok("init")
	c.ok("backup", src)
	snaps := c.snapshots()
	return &baseline{c: c, src: src, snap: snaps[len(snaps)-1].ID, want: digest(t, src)}
}

// intact checks that the repository still checks clean, data included, and
// that the baseline snapshot restores byte for byte.
func (b *baseline) intact(t *testing.T, c *cli) {
	t.Helper()
	if c == nil {
		c = b.c
	}
	if out := c.ok("check", "--read-data"); !strings.Contains(out, "no errors") {
		t.Fatalf("check: %s", out)
	}
	target := t.TempDir()
	c.ok("restore", b.snap, "--target", target)
	sameTree(t, b.want, digest(t, filepath.Join(target, b.src)))
}

// expect runs escrow and checks the exit code and that stderr holds every
// one of msgs.
func expect(t *testing.T, c *cli, stdin []byte, code int, msgs []string, args ...string) result {
	t.Helper()
	r := c.run(stdin, args...)
	if r.code != code {
		t.Fatalf("escrow %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	t.Logf("escrow %s: exit %d: %s", strings.Join(args, " "), r.code, strings.TrimSpace(r.stderr))
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) {
			t.Errorf("escrow %s: stderr does not mention %q:\n%s", strings.Join(args, " "), m, r.stderr)
		}
	}
	return r
}

func (c *cli) with(t *testing.T, env ...string) *cli {
	return &cli{t: t, env: append(append([]string(nil), c.env...), env...)}
}

// asNobody runs escrow as user nobody (root reads everything, so permission
// cases need an unprivileged user).
func (c *cli) asNobody(t *testing.T, args ...string) result {
	t.Helper()
	setpriv := testenv.RequireBinary(t, "setpriv")
	cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", escrowBin}, args...)...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// openUp makes dir and the folders above it up to the root searchable by
// everyone, so that an unprivileged user reaches what is below.
func openUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func writeBytes(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestBadInputPasswords(t *testing.T) {
	dir := t.TempDir()
	b := newBaseline(t, newCLI(t, filepath.Join(dir, "repo")))
	tmp := t.TempDir()
	missing := filepath.Join(tmp, "no-such-password")
	empty := writeBytes(t, filepath.Join(tmp, "empty"), nil, 0o600)
	newline := writeBytes(t, filepath.Join(tmp, "newline"), []byte("\n"), 0o600)
	cases := []struct {
		name string
		env  []string
		code int
		msgs []string
	}{
		{"wrong", []string{"ESCROW_PASSWORD_FILE=" + writePassword(t, "not the password")}, exitWrongPass, []string{"wrong password"}},
		{"wrong in environment", []string{"ESCROW_PASSWORD_FILE=", "ESCROW_PASSWORD=nope"}, exitWrongPass, []string{"wrong password"}},
		{"empty file", []string{"ESCROW_PASSWORD_FILE=" + empty}, exitUsage, []string{empty, "is empty"}},
		{"only a newline", []string{"ESCROW_PASSWORD_FILE=" + newline}, exitUsage, []string{newline, "is empty"}},
		{"empty environment", []string{"ESCROW_PASSWORD_FILE=", "ESCROW_PASSWORD="}, exitUsage, []string{"no password", "ESCROW_PASSWORD_FILE"}},
		{"file missing", []string{"ESCROW_PASSWORD_FILE=" + missing}, exitUsage, []string{missing, "no such file"}},
		{"file is a directory", []string{"ESCROW_PASSWORD_FILE=" + tmp}, exitUsage, []string{tmp, "is a directory"}},
		{"file is endless", []string{"ESCROW_PASSWORD_FILE=/dev/zero"}, exitUsage, []string{"/dev/zero", "larger than 16 MiB"}},
		{"huge wrong", []string{"ESCROW_PASSWORD_FILE=" + writePassword(t, strings.Repeat("x", 1<<20))}, exitWrongPass, []string{"wrong password"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := expect(t, b.c.with(t, tc.env...), nil, tc.code, tc.msgs, "snapshots")
			if strings.Count(r.stderr, "\n") > 2 {
				t.Errorf("want a short error, got:\n%s", r.stderr)
			}
		})
	}
	t.Run("file unreadable", func(t *testing.T) {
		// nobody may read the repository but not the password file.
		secret := writeBytes(t, filepath.Join(t.TempDir(), "password"), []byte("correct horse battery staple\n"), 0o600)
		openUp(t, filepath.Dir(secret))
		openUp(t, dir)
		chownTree(t, dir, 65534, 65534)
		defer chownTree(t, dir, 0, 0)
		r := b.c.with(t, "ESCROW_PASSWORD_FILE="+secret).asNobody(t, "snapshots")
		if r.code != exitUsage || !strings.Contains(r.stderr, secret) || !strings.Contains(r.stderr, "permission denied") {
			t.Fatalf("exit %d, want %d naming %s and permission denied: %s", r.code, exitUsage, secret, r.stderr)
		}
	})
	b.intact(t, nil)

	// Passwords a repository is made with: 1 MiB, and bytes that are not
	// UTF-8. Each must open again with the same bytes, and restic must open
	// the repository with them too.
	for _, tc := range []struct {
		name string
		pw   []byte
	}{
		{"huge", bytes.Repeat([]byte("0123456789abcdef"), 1<<16)},
		{"not UTF-8", []byte("caf\xe9 \xff\xfe\x80 pass")},
	} {
		t.Run("init "+tc.name, func(t *testing.T) {
			repoDir := filepath.Join(t.TempDir(), "repo")
			pwFile := writeBytes(t, filepath.Join(t.TempDir(), "pw"), append(tc.pw, '\n'), 0o600)
			c := newCLI(t, repoDir, "ESCROW_PASSWORD_FILE="+pwFile)
			nb := newBaseline(t, c)
			nb.intact(t, nil)
			// One byte off is another password.
			off := bytes.Clone(tc.pw)
			off[len(off)-1] ^= 1
			offFile := writeBytes(t, filepath.Join(t.TempDir(), "pw"), off, 0o600)
			expect(t, c.with(t, "ESCROW_PASSWORD_FILE="+offFile), nil, exitWrongPass, []string{"wrong password"}, "snapshots")

			// The same bytes through the environment (which holds at most
			// 128 KiB per variable on Linux), for escrow and restic.
			restic := testenv.RequireBinary(t, "restic")
			cmd := exec.Command(restic, "--no-cache", "-r", repoDir, "cat", "config")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_PASSWORD_FILE=" + pwFile}
			if len(tc.pw) < 64<<10 {
				c.with(t, "ESCROW_PASSWORD_FILE=", "ESCROW_PASSWORD="+string(tc.pw)).ok("snapshots")
				cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_PASSWORD=" + string(tc.pw)}
			}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("restic does not open the repository with the same password bytes: %v\n%s", err, out)
			}
			// restic reads a password file as text (a byte order mark
			// decides UTF-16, invalid UTF-8 becomes U+FFFD): record what it
			// does with the file escrow read.
			cmd = exec.Command(restic, "--no-cache", "-r", repoDir, "cat", "config")
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_PASSWORD_FILE=" + pwFile}
			out, err := cmd.CombinedOutput()
			t.Logf("restic --password-file with the same file: err=%v %s", err, firstLine(string(out)))
		})
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func TestBadInputKeyFiles(t *testing.T) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	b := newBaseline(t, newCLI(t, repoDir))
	b.c.ok("key", "add", "--new-password-file", writePassword(t, "second key"), "--user", "owner", "--host", "offline")
	var firstID, secondID string
	for _, k := range b.c.keys() {
		if k.Current {
			firstID = k.ID
		} else {
			secondID = k.ID
		}
	}
	orig, err := os.ReadFile(filepath.Join(repoDir, "keys", firstID))
	if err != nil {
		t.Fatal(err)
	}
	var kf map[string]any
	if err := json.Unmarshal(orig, &kf); err != nil {
		t.Fatal(err)
	}
	// Flip one bit of the MAC (the last 16 bytes of the sealed master key).
	sealed, err := base64.StdEncoding.DecodeString(kf["data"].(string))
	if err != nil {
		t.Fatal(err)
	}
	sealed[len(sealed)-1] ^= 0x01
	kf["data"] = base64.StdEncoding.EncodeToString(sealed)
	badMAC, _ := json.Marshal(kf)

	for _, tc := range []struct {
		name    string
		content []byte
		inPlace bool // keep the old name: the content no longer matches it
		// only: what opening says when this is the repository's only key.
		onlyCode int
		onlyMsgs []string
	}{
		{"garbage JSON", []byte("{\"kdf\": scrypt, garbage"), false, exitFailure, []string{"damaged"}},
		{"garbage in place", []byte("{\"kdf\": scrypt, garbage"), true, exitFailure, []string{firstID[:8], "damaged"}},
		{"truncated", orig[:len(orig)/2], false, exitFailure, []string{"damaged"}},
		{"truncated in place", orig[:len(orig)/2], true, exitFailure, []string{firstID[:8], "damaged"}},
		{"wrong MAC", badMAC, false, exitWrongPass, []string{"wrong password"}},
		{"empty", nil, false, exitFailure, []string{"damaged"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			copyDir := filepath.Join(t.TempDir(), "repo")
			if out, err := exec.Command("cp", "-a", repoDir, copyDir).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			keys := filepath.Join(copyDir, "keys")
			if err := os.Remove(filepath.Join(keys, firstID)); err != nil {
				t.Fatal(err)
			}
			name := firstID
			if !tc.inPlace {
				sum := sha256.Sum256(tc.content)
				name = hex.EncodeToString(sum[:])
			}
			writeBytes(t, filepath.Join(keys, name), tc.content, 0o600)
			first := b.c.with(t, "ESCROW_REPOSITORY="+copyDir)
			second := first.with(t, "ESCROW_PASSWORD_FILE="+writePassword(t, "second key"))

			// The other key still opens everything.
			b.intact(t, second)
			if ls := second.ok("key", "list"); !strings.Contains(ls, name[:8]) {
				t.Errorf("key list does not show the damaged key %s:\n%s", name[:8], ls)
			}
			// The damaged key's password no longer opens, and says why.
			r := first.run(nil, "snapshots")
			if r.code == 0 {
				t.Fatal("a damaged key opened the repository")
			}
			t.Logf("first password with its key damaged: exit %d: %s", r.code, strings.TrimSpace(r.stderr))

			// The damaged key alone.
			if err := os.Remove(filepath.Join(keys, secondID)); err != nil {
				t.Fatal(err)
			}
			expect(t, first, nil, tc.onlyCode, tc.onlyMsgs, "snapshots")
		})
	}
}

// resticVersion returns restic's major and minor version.
func resticVersion(t *testing.T) (int, int) {
	t.Helper()
	out, err := exec.Command(testenv.RequireBinary(t, "restic"), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`restic (\d+)\.(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("restic version: %q", out)
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return major, minor
}

// Names and link targets are bytes: they must come back byte for byte,
// from escrow and from restic, whatever they hold.
func TestBadInputNames(t *testing.T) {
	restic := testenv.RequireBinary(t, "restic")
	base := t.TempDir()
	// The backed-up directory's own name is not UTF-8 either: the
	// snapshot's paths (JSON strings) cannot hold it exactly.
	src := filepath.Join(base, "site-caf\xe9")
	names := []string{
		"caf\xe9.php",          // Latin-1
		"\xff\xfe\x80",         // no encoding at all
		"line\nbreak.txt",      // a newline
		"tab\there",            // a tab
		`quote"and\back.txt`,   // JSON's and Go's escape characters
		"\\x41 not an A",       // looks like an escape
		"emoji-\U0001F600.txt", // valid UTF-8, four bytes
		"bell\a\x1b[31m",       // control characters
	}
	for _, n := range names {
		d := filepath.Join(src, "dir-"+n)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		writeBytes(t, filepath.Join(d, n), []byte("content of "+n), 0o644)
		if err := os.Symlink(n, filepath.Join(src, "link-"+n)); err != nil {
			t.Fatal(err)
		}
	}
	want := digest(t, src)
	c := newCLI(t, filepath.Join(base, "repo"))
	c.ok("init")
	c.ok("backup", src)
	// Unchanged names find their parent snapshot and nodes: nothing is
	// read again.
	if out := c.ok("backup", src); !strings.Contains(out, "Read:   0 B") {
		t.Errorf("second backup read files again: %s", out)
	}
	target := t.TempDir()
	c.ok("restore", "latest", "--target", target, "--verify")
	sameTree(t, want, digest(t, filepath.Join(target, src)))
	c.ok("check", "--read-data")

	// restic reads escrow's trees: check, and restore to the same bytes.
	// restic before 0.17 has no linktarget_raw and gets U+FFFD for the
	// bytes of a link target that are not UTF-8.
	major, minor := resticVersion(t)
	rawTargets := major > 0 || minor >= 17
	pw := strings.TrimPrefix(c.env[3], "ESCROW_PASSWORD_FILE=")
	rsEnv := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_REPOSITORY=" + filepath.Join(base, "repo"), "RESTIC_PASSWORD_FILE=" + pw}
	runRestic := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(restic, append([]string{"--no-cache"}, args...)...)
		cmd.Env = rsEnv
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("restic %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// escrow's backups leave their lock files (the host never deletes);
	// restic 0.14's check locks exclusively.
	runRestic("check", "--read-data", "--no-lock")
	rtarget := t.TempDir()
	runRestic("restore", "latest", "--target", rtarget)
	got := digest(t, filepath.Join(rtarget, src))
	for k, v := range want {
		if !rawTargets && strings.HasPrefix(k, "link-") && !validUTF8(k) {
			if _, ok := got[k]; !ok {
				t.Errorf("restic did not restore %q", k)
			}
			delete(got, k)
			continue
		}
		if got[k] != v {
			t.Errorf("restic restored %q as %q, want %q", k, got[k], v)
		}
		delete(got, k)
	}
	for k := range got {
		t.Errorf("restic restored %q, which is not in the source", k)
	}
	if !rawTargets {
		t.Logf("restic %d.%d predates linktarget_raw: link targets that are not UTF-8 were not compared for restic", major, minor)
	}

	// escrow reads restic's trees of the same names.
	runRestic("backup", "--tag", "restic", src)
	etarget := t.TempDir()
	c.ok("restore", "latest", "--tag", "restic", "--target", etarget)
	got = digest(t, filepath.Join(etarget, src))
	for k, v := range want {
		if !rawTargets && strings.HasPrefix(k, "link-") && !validUTF8(k) {
			continue // restic wrote U+FFFD into the target
		}
		if got[k] != v {
			t.Errorf("escrow restored restic's %q as %q, want %q", k, got[k], v)
		}
	}
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// FIFOs, sockets and device files are recorded as such and never read (a
// FIFO with no writer would block a read forever); symlink loops are links
// like any other; a sparse file of several GB takes neither GBs of
// repository nor minutes, and comes back sparse.
func TestBadInputSpecialFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: reads a sparse file of several GB")
	}
	if os.Geteuid() != 0 {
		t.Skip("device files need root")
	}
	base := t.TempDir()
	src := filepath.Join(base, "site")
	makeSite(t, src, 12, 1)
	special := filepath.Join(src, "special")
	if err := os.MkdirAll(special, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(special, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("unix", filepath.Join(special, "socket"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := unix.Mknod(filepath.Join(special, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(special, "loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"self", "self"}, {"ping", "pong"}, {"pong", "ping"}, {"up", ".."}, {"dangling", "/no/such/target"}} {
		if err := os.Symlink(l[1], filepath.Join(special, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	sparseSize := int64(4 << 30)
	if testenv.Long() {
		sparseSize = 16 << 30
	}
	sparse := filepath.Join(src, "disk.img")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	dataAt := []int64{0, 1 << 30, sparseSize / 2, sparseSize - 4}
	for _, off := range dataAt {
		if _, err := f.WriteAt([]byte("data"), off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	aside := filepath.Join(base, "disk.img")
	if err := os.Rename(sparse, aside); err != nil { // digest reads files whole
		t.Fatal(err)
	}
	want := digest(t, src)
	if err := os.Rename(aside, sparse); err != nil {
		t.Fatal(err)
	}
	delete(want, "special/socket") // a socket is not restored: its program makes it again

	repoDir := filepath.Join(base, "repo")
	c := newCLI(t, repoDir)
	c.ok("init")
	start := time.Now()
	done := make(chan result, 1)
	go func() { done <- c.run(nil, "backup", src) }()
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Minute):
		t.Fatal("backup hung (a FIFO read?)")
	}
	took := time.Since(start)
	if r.code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	repoSize := duBytes(t, repoDir)
	t.Logf("backup of a %d GiB sparse file and special files: %v, repository %d KiB", sparseSize>>30, took.Round(time.Millisecond), repoSize>>10)
	if repoSize > 16<<20 {
		t.Errorf("repository is %d MiB for a sparse file of %d bytes of data", repoSize>>20, 16)
	}
	ls := c.ok("ls", "latest", "--json")
	for name, typ := range map[string]string{"fifo": "fifo", "socket": "socket", "null": "chardev", "loop9": "dev", "self": "symlink", "ping": "symlink"} {
		if !strings.Contains(ls, `"path":"`+filepath.Join(special, name)+`","type":"`+typ+`"`) {
			t.Errorf("%s not listed as a %s:\n%s", name, typ, ls)
		}
	}

	target := t.TempDir()
	start = time.Now()
	c.ok("restore", "latest", "--target", target)
	t.Logf("restore: %v", time.Since(start).Round(time.Millisecond))
	restored := filepath.Join(target, src)
	start = time.Now()
	sameSparse(t, filepath.Join(restored, "disk.img"), sparseSize, dataAt)
	t.Logf("comparing the restored sparse file: %v", time.Since(start).Round(time.Millisecond))
	restoredSparse := filepath.Join(target, "disk.img")
	if err := os.Rename(filepath.Join(restored, "disk.img"), restoredSparse); err != nil {
		t.Fatal(err)
	}
	sameTree(t, want, digest(t, restored))
	var st unix.Stat_t
	if err := unix.Stat(restoredSparse, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != sparseSize || st.Blocks*512 > 64<<20 {
		t.Errorf("restored sparse file: size %d, %d MiB allocated; want %d and sparse", st.Size, st.Blocks*512>>20, sparseSize)
	}
	if err := unix.Stat(filepath.Join(restored, "special", "null"), &st); err != nil || uint64(st.Rdev) != unix.Mkdev(1, 3) {
		t.Errorf("device file: %v rdev %d", err, st.Rdev)
	}
	c.ok("check", "--read-data")
}

// duBytes is the space the files below dir take on disk.
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// sameSparse checks that the file at name holds size bytes: "data" at each
// of dataAt and zeros elsewhere. Only the regions the file system holds data
// for are read (SEEK_DATA): holes read as zeros by definition.
func sameSparse(t *testing.T, name string, size int64, dataAt []int64) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Size() != size {
		t.Fatalf("%s: size %v, want %d (%v)", name, fi.Size(), size, err)
	}
	fd := int(f.Fd())
	seen := map[int64]bool{}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole is left
		}
		if err != nil {
			t.Fatal(err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			t.Fatal(err)
		}
		for p := data; p < hole; p += int64(len(buf)) {
			n, err := f.ReadAt(buf[:min(int64(len(buf)), hole-p)], p)
			if err != nil && !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			for i, c := range buf[:n] {
				at := p + int64(i)
				want := byte(0)
				for _, d := range dataAt {
					if at >= d && at < d+4 {
						want = "data"[at-d]
						seen[d] = true
					}
				}
				if c != want {
					t.Fatalf("%s: byte %d is %#x, want %#x", name, at, c, want)
				}
			}
		}
		off = hole
	}
	if len(seen) != len(dataAt) {
		t.Fatalf("%s: the data at %v is missing (found %v)", name, dataAt, seen)
	}
}

// Files and directories that cannot be read are named, left out, and the
// snapshot of the rest is saved, tagged "incomplete", with exit code 3.
func TestBadInputPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch to an unprivileged user")
	}
	base := t.TempDir()
	src := filepath.Join(base, "site")
	makeSite(t, src, 13, 1)
	repoDir := filepath.Join(base, "repo")
	b := newBaseline(t, newCLI(t, repoDir))
	noFile := writeBytes(t, filepath.Join(src, "wp-config-secret.php"), []byte("<?php // root only"), 0o600)
	noDir := filepath.Join(src, "private")
	if err := os.MkdirAll(filepath.Join(noDir, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeBytes(t, filepath.Join(noDir, "inner", "key.pem"), []byte("key"), 0o644)
	openUp(t, base)
	chownTree(t, base, 65534, 65534)
	for _, p := range []string{noFile, noDir} {
		if err := os.Chown(p, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(noDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pw := strings.TrimPrefix(b.c.env[3], "ESCROW_PASSWORD_FILE=")
	if err := os.Chown(pw, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	openUp(t, filepath.Dir(pw))
	r := b.c.asNobody(t, "backup", src)
	if r.code != exitIncomplete {
		t.Fatalf("exit %d, want %d\n%s%s", r.code, exitIncomplete, r.stdout, r.stderr)
	}
	for _, p := range []string{noFile, noDir} {
		if !strings.Contains(r.stderr, "could not read "+p+": ") {
			t.Errorf("stderr does not name %s:\n%s", p, r.stderr)
		}
	}
	if strings.Count(r.stderr, "permission denied") < 2 {
		t.Errorf("want permission denied for each:\n%s", r.stderr)
	}
	snaps := b.c.snapshots()
	last := snaps[len(snaps)-1]
	if !contains(last.Tags, "incomplete") {
		t.Errorf("snapshot not tagged incomplete: %+v", last)
	}
	ls := b.c.ok("ls", "latest")
	if strings.Contains(ls, "wp-config-secret.php") || strings.Contains(ls, "key.pem") || !strings.Contains(ls, "wp-config.php") {
		t.Errorf("incomplete snapshot content:\n%s", ls)
	}
	chownTree(t, base, 0, 0)
	b.intact(t, nil)
}

// Files that grow, are rewritten, or vanish (whole directories too) while a
// backup reads them: the backup completes (exit 0, nothing reported as
// unreadable), every file it stored is one the source really held, and the
// repository stays valid.
func TestBadInputChangingFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	rounds := 3
	if testenv.Long() {
		rounds = 20
	}
	base := t.TempDir()
	c := newCLI(t, filepath.Join(base, "repo"))
	c.ok("init")
	for round := 0; round < rounds; round++ {
		src := filepath.Join(base, "site"+strconv.Itoa(round))
		content := func(d, f int) []byte {
			return bytes.Repeat([]byte("dir "+strconv.Itoa(d)+" file "+strconv.Itoa(f)+"\n"), 20+f)
		}
		const dirs, files = 60, 30
		for d := 0; d < dirs; d++ {
			dd := filepath.Join(src, "churn", strconv.Itoa(d))
			if err := os.MkdirAll(dd, 0o755); err != nil {
				t.Fatal(err)
			}
			for f := 0; f < files; f++ {
				writeBytes(t, filepath.Join(dd, strconv.Itoa(f)+".txt"), content(d, f), 0o644)
			}
		}
		logLine := []byte(strings.Repeat("log line ", 100) + "\n")
		logFile := filepath.Join(src, "grow.log")
		writeBytes(t, logFile, bytes.Repeat(logLine, 20000), 0o644) // ~18 MB
		stop := make(chan struct{})
		churned := make(chan error, 1)
		locks := filepath.Join(base, "repo", "locks")
		before, _ := os.ReadDir(locks)
		go func() {
			// Churn once the backup holds its lock, that is, walks the tree.
			for {
				now, _ := os.ReadDir(locks)
				if len(now) > len(before) {
					break
				}
				select {
				case <-stop:
					churned <- nil
					return
				case <-time.After(time.Millisecond):
				}
			}
			lf, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				churned <- err
				return
			}
			defer lf.Close()
			for d := dirs - 1; ; d-- {
				select {
				case <-stop:
					churned <- nil
					return
				default:
				}
				if d >= 0 {
					if err := os.RemoveAll(filepath.Join(src, "churn", strconv.Itoa(d))); err != nil {
						churned <- err
						return
					}
				}
				if _, err := lf.Write(logLine); err != nil {
					churned <- err
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		r := c.run(nil, "backup", src)
		close(stop)
		if err := <-churned; err != nil {
			t.Fatal(err)
		}
		if r.code != 0 {
			t.Fatalf("round %d: exit %d\n%s%s", round, r.code, r.stdout, r.stderr)
		}
		target := t.TempDir()
		c.ok("restore", "latest", "--target", target)
		restored := filepath.Join(target, src)
		n := 0
		err := filepath.Walk(filepath.Join(restored, "churn"), func(p string, fi os.FileInfo, err error) error {
			if err != nil || fi.IsDir() {
				return err
			}
			var d, f int
			rel, _ := filepath.Rel(filepath.Join(restored, "churn"), p)
			if _, err := fmt.Sscanf(rel, "%d/%d.txt", &d, &f); err != nil {
				return fmt.Errorf("unexpected %s", rel)
			}
			got, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !bytes.Equal(got, content(d, f)) {
				return fmt.Errorf("%s: content differs", rel)
			}
			n++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(restored, "grow.log"))
		if err != nil {
			t.Fatal(err)
		}
		now, _ := os.ReadFile(logFile)
		if len(got)%len(logLine) != 0 || !bytes.HasPrefix(now, got) {
			t.Errorf("round %d: grow.log restored as %d bytes that are not a state of the file (%d now)", round, len(got), len(now))
		}
		t.Logf("round %d: %d of %d churned files were still there and stored; grow.log stored at %d of %d bytes", round, n, dirs*files, len(got), len(now))
	}
	c.ok("check", "--read-data")
}

// Credentials the store refuses, a bucket that does not exist, a store that
// refuses connections and a clock the store will not accept: each stops
// with a message naming what to fix, never the secret, and nothing stored
// is lost.
func TestBadInputStore(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	good := newCLI(t, srv.URL(bucket, "site"), srv.Env()...)
	b := newBaseline(t, good)
	const badSecret = "wrong-secret-7c1e9a2b4d"
	for _, tc := range []struct {
		name string
		env  []string
		code int
		msgs []string
	}{
		{"wrong access key", []string{"AWS_ACCESS_KEY_ID=NOSUCHKEY9", "AWS_SECRET_ACCESS_KEY=" + badSecret}, exitFailure, []string{"NOSUCHKEY9", "AWS_ACCESS_KEY_ID"}},
		{"wrong secret", []string{"AWS_SECRET_ACCESS_KEY=" + badSecret}, exitFailure, []string{srv.AccessKey, "AWS_SECRET_ACCESS_KEY"}},
		{"bogus session token", []string{"AWS_SESSION_TOKEN=" + badSecret}, exitFailure, []string{srv.AccessKey, "AWS_SESSION_TOKEN"}},
		{"no such bucket", []string{"ESCROW_REPOSITORY=" + srv.URL("no-such-bucket-b1", "site")}, exitFailure, []string{`"no-such-bucket-b1"`, "does not exist"}},
		{"no repository in the bucket", []string{"ESCROW_REPOSITORY=" + srv.URL(bucket, "other")}, exitNoRepository, []string{bucket + "/other"}},
		{"connection refused", []string{"ESCROW_REPOSITORY=s3:http://127.0.0.1:1/" + bucket + "/site"}, exitFailure, []string{"cannot reach the store at s3:http://127.0.0.1:1/" + bucket, "connection refused"}},
		{"clock 2h ahead", []string{"ESCROW_TEST_CLOCK_OFFSET=2h"}, exitFailure, []string{"clock is about 2h0m", "ahead", "NTP"}},
		{"clock 1h behind", []string{"ESCROW_TEST_CLOCK_OFFSET=-1h"}, exitFailure, []string{"clock is about 1h0m", "behind", "NTP"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good.with(t, tc.env...)
			for _, args := range [][]string{{"--retry-for", "2s", "snapshots"}, {"--retry-for", "2s", "backup", b.src}} {
				r := expect(t, c, nil, tc.code, tc.msgs, args...)
				if strings.Contains(r.stdout+r.stderr, badSecret) || strings.Contains(r.stdout+r.stderr, srv.SecretKey) {
					t.Fatalf("secret in the output: %s", r.stderr)
				}
			}
		})
	}
	// A clock a few minutes off is within what S3 signing allows.
	good.with(t, "ESCROW_TEST_CLOCK_OFFSET=5m").ok("snapshots")
	if n := len(good.snapshots()); n != 1 {
		t.Fatalf("%d snapshots after the failed runs, want the baseline's 1", n)
	}
	b.intact(t, nil)
}

// A full disk under the agent's state directory: the agent goes on backing
// up (its caches and status file are conveniences), says in its log which
// directory is full, and the repository stays valid. Once space is free
// again, the status file is written again.
func TestBadInputStateDirFull(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a small file system needs root")
	}
	s := newAgentSetup(t)
	if err := os.MkdirAll(s.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", s.state).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (not permitted here?): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", s.state).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", s.state, err, out)
		}
	})
	p := s.start(t)
	s.waitFor(t, p, "the first snapshot", func(st agent.SourceStatus) bool { return st.LastSnapshot != nil })

	filler := filepath.Join(s.state, "filler")
	fill(t, filler)
	changeAndWait(t, s, p, "written-while-full.txt")
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.logText(), "disk full") {
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say the state directory is full:\n%s", p.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, line := range strings.Split(p.logText(), "\n") {
		if strings.Contains(line, "disk full") {
			if !strings.Contains(line, s.state) {
				t.Errorf("the disk-full message does not name %s: %s", s.state, line)
			}
			t.Logf("agent log: %s", line)
			break
		}
	}

	// Space again: the status file catches up.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	writeBytes(t, filepath.Join(s.src, "after.txt"), []byte("after"), 0o644)
	s.settled(t, p)
	s.requireLatestIsTree(t, "space came back")
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("agent exit: %v\n%s", err, p.logText())
	}

	// An agent that starts with the state directory already full.
	fill(t, filler)
	p = s.start(t)
	changeAndWait(t, s, p, "written-after-a-full-start.txt")
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("agent exit: %v\n%s", err, p.logText())
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.c.ok("check", "--read-data")
	s.c.ok("unlock")
	s.resticCheck(t, "check", "--read-data")
}

// fill writes name until the file system holding it is full.
func fill(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// changeAndWait adds a file to the site and waits for a snapshot that holds
// it, watching the repository (the status file may not be written).
func changeAndWait(t *testing.T, s *agentSetup, p *agentProc, name string) {
	t.Helper()
	before := len(s.c.snapshots())
	writeBytes(t, filepath.Join(s.src, name), bytes.Repeat([]byte(name+"\n"), 20000), 0o644)
	deadline := time.Now().Add(60 * time.Second)
	for len(s.c.snapshots()) == before || !strings.Contains(s.c.ok("ls", "latest", s.src), name) {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot with %s while the state directory is full\n%s", name, p.logText())
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.requireLatestIsTree(t, name)
}

//go:build linux || darwin

package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

// These tests hold escrow to the promise that its repositories are restic
// repositories: what escrow writes, the real restic must check, list,
// restore and dump, byte for byte and with the metadata restic restores.

const (
	interopPassword = "interop: correct horse battery staple"
	interopHost     = "interop-test"
)

// fastKDF keeps opening cheap; restic reads whatever scrypt cost a key file names.
var fastKDF = repo.KDFParams{N: 1024, R: 8, P: 1}

func TestResticReadsEscrowBackups(t *testing.T) {
	restic := testenv.RequireBinary(t, "restic")
	ctx := context.Background()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	repoDir := filepath.Join(tmp, "repo")

	be, err := local.Create(ctx, repoDir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, interopPassword, repo.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()

	makeInteropTree(t, src)
	nFiles := countFiles(t, src)

	first := backupTree(t, repoDir, src)
	if first.Incomplete() {
		t.Fatalf("first backup incomplete: %v", first.Errors)
	}
	if s := first.Summary; s.FilesNew != uint64(nFiles) || s.FilesChanged != 0 || s.FilesUnmodified != 0 {
		t.Errorf("first backup: new %d, changed %d, unmodified %d; want %d new", s.FilesNew, s.FilesChanged, s.FilesUnmodified, nFiles)
	}
	// The 20 MB file repeats 8 MB of itself and the sparse file is mostly
	// zeros: deduplication must store well under what was read.
	if s := first.Summary; s.DataAdded >= first.BytesRead-(8<<20) {
		t.Errorf("first backup read %d bytes and added %d: repeated content was not deduplicated", first.BytesRead, s.DataAdded)
	}

	// Nothing changed: every file comes from the parent, no byte is read.
	same := backupTree(t, repoDir, src)
	if same.Parent == nil || same.Parent.ID != first.Snapshot.ID {
		t.Fatalf("second backup did not use the first as parent")
	}
	if same.BytesRead != 0 {
		t.Errorf("backup of an unchanged tree read %d bytes, want 0", same.BytesRead)
	}
	if s := same.Summary; s.FilesUnmodified != uint64(nFiles) || s.FilesNew != 0 || s.FilesChanged != 0 {
		t.Errorf("unchanged tree: unmodified %d, new %d, changed %d; want %d unmodified", s.FilesUnmodified, s.FilesNew, s.FilesChanged, nFiles)
	}

	modifyInteropTree(t, src)
	changed := backupTree(t, repoDir, src)
	if s := changed.Summary; s.FilesChanged != 2 || s.FilesNew != 1 || s.FilesUnmodified != uint64(nFiles-2) {
		t.Errorf("after changing 2 files and adding 1: changed %d, new %d, unmodified %d; want 2, 1, %d",
			s.FilesChanged, s.FilesNew, s.FilesUnmodified, nFiles-2)
	}

	stream := make([]byte, 5<<20)
	fillRandom(stream, 5)
	copy(stream, "-- escrow interop dump\n")
	streamed := backupStream(t, repoDir, stream, "databases/shop.sql", chunk.Shape{})

	rc := resticCmd{t: t, bin: restic, repo: repoDir}
	if out := rc.run("check", "--read-data"); !strings.Contains(string(out), "no errors were found") {
		t.Fatalf("restic check --read-data did not report success:\n%s", out)
	}

	var snaps []struct {
		ID       string   `json:"id"`
		Paths    []string `json:"paths"`
		Hostname string   `json:"hostname"`
		Tree     string   `json:"tree"`
	}
	if err := json.Unmarshal(rc.run("snapshots", "--json"), &snaps); err != nil {
		t.Fatalf("restic snapshots --json: %v", err)
	}
	want := []struct {
		res   *backup.Result
		paths []string
	}{
		{first, []string{src}},
		{same, []string{src}},
		{changed, []string{src}},
		{streamed, []string{"/databases/shop.sql"}},
	}
	if len(snaps) != len(want) {
		t.Fatalf("restic lists %d snapshots, want %d", len(snaps), len(want))
	}
	for i, w := range want {
		got := snaps[i] // restic lists oldest first
		if got.ID != w.res.Snapshot.ID.String() || got.Tree != w.res.Snapshot.Tree.String() ||
			strings.Join(got.Paths, "\n") != strings.Join(w.paths, "\n") || got.Hostname != interopHost {
			t.Errorf("restic snapshot %d: %+v, want ID %s, tree %s, paths %q", i, got, w.res.Snapshot.ID, w.res.Snapshot.Tree, w.paths)
		}
	}

	target := filepath.Join(tmp, "restored")
	rc.run("restore", "latest", "--target", target, "--path", src)
	compareRestored(t, src, filepath.Join(target, src))

	dumped := rc.run("dump", "--path", "/databases/shop.sql", "latest", "/databases/shop.sql")
	if !bytes.Equal(dumped, stream) {
		t.Errorf("restic dump returned %d bytes that differ from the %d streamed", len(dumped), len(stream))
	}
}

// Database dumps are streamed in smaller chunks than files: restic must
// check, list and dump such snapshots like any other, and a small edit must
// store only the few chunks around it.
func TestResticReadsSmallChunkStreams(t *testing.T) {
	restic := testenv.RequireBinary(t, "restic")
	ctx := context.Background()
	repoDir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(ctx, repoDir)
	mustDo(t, err)
	r, err := repo.Init(ctx, be, interopPassword, repo.Options{KDF: fastKDF})
	mustDo(t, err)
	r.Close()

	type saved struct {
		name          string
		dump, edited  []byte
		first, second *backup.Result
	}
	var all []saved
	// restic's shape scaled down, and one that skips more of each chunk
	// than restic's, as dumps are cut.
	for i, shape := range []chunk.Shape{chunk.Average(chunk.MinAverage), chunk.Average(64 << 10), {Min: 32 << 10, Bits: 14, Max: 256 << 10}} {
		// Text of its own: with one shape the edited dump's last chunk may
		// be a chunk another shape already stored.
		dump, edited := interopDump(uint64(i + 1))
		s := saved{name: fmt.Sprintf("databases/shape%d.sql", i), dump: dump, edited: edited}
		s.first = backupStream(t, repoDir, dump, s.name, shape)
		// Far more blobs than the default's three.
		if n := s.first.Summary.DataBlobs; n < len(dump)/(2*shape.Mean()) {
			t.Errorf("shape %+v: the dump made %d blobs, want about %d", shape, n, len(dump)/shape.Mean())
		}
		s.second = backupStream(t, repoDir, edited, s.name, shape)
		if n := s.second.Summary.DataBlobs; n < 2 || n > 4 {
			t.Errorf("shape %+v: the edited dump added %d blobs, want 2 to 4 (the row's chunk and the end)", shape, n)
		}
		all = append(all, s)
	}

	rc := resticCmd{t: t, bin: restic, repo: repoDir}
	if out := rc.run("check", "--read-data"); !strings.Contains(string(out), "no errors were found") {
		t.Fatalf("restic check --read-data did not report success:\n%s", out)
	}
	for _, s := range all {
		for _, v := range []struct {
			res  *backup.Result
			want []byte
		}{{s.first, s.dump}, {s.second, s.edited}} {
			got := rc.run("dump", v.res.Snapshot.ID.String(), "/"+s.name)
			if !bytes.Equal(got, v.want) {
				t.Errorf("restic dump of %s (snapshot %s): %d bytes that differ from the %d streamed",
					s.name, v.res.Snapshot.ID.Str(), len(got), len(v.want))
			}
		}
	}
}

// TestUnchangedTreeKeepsItsTrees: a second backup of an unchanged tree must
// produce the same root tree, so that no tree blob is stored again.
func TestUnchangedTreeKeepsItsTrees(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src")
	repoDir := filepath.Join(tmp, "repo")
	be, err := local.Create(ctx, repoDir)
	mustDo(t, err)
	r, err := repo.Init(ctx, be, interopPassword, repo.Options{KDF: fastKDF})
	mustDo(t, err)
	r.Close()
	write(t, src, "d/e/f.txt", []byte("x"), 0o644)

	first := backupTree(t, repoDir, src)
	second := backupTree(t, repoDir, src)
	// The directories above src (/tmp and the test's folders) are recorded
	// too, and other processes may change their mtimes meanwhile: compare
	// src's own tree, and allow new trees only for the levels above it.
	r = openRepo(t, repoDir)
	defer r.Close()
	mustDo(t, r.LoadIndex(ctx))
	subtree := func(sn *repo.Snapshot) repo.ID {
		n, err := r.FindNode(ctx, sn, src)
		mustDo(t, err)
		return *n.Subtree
	}
	if a, b := subtree(first.Snapshot), subtree(second.Snapshot); a != b {
		t.Errorf("unchanged tree got tree %s, first backup had %s", b.Str(), a.Str())
	}
	above := strings.Count(strings.Trim(src, "/"), "/") + 1 // the root and the folders above src
	if n := second.Summary.TreeBlobs; n > above {
		t.Errorf("unchanged tree stored %d new tree blobs, want at most the %d above it", n, above)
	}
}

// interopDump is SQL-like text, so that blobs are compressed as a dump's
// are, and the same text edited: a line inserted in the middle and a row
// appended. Each seed gives text no other seed shares, so that streams cut
// at different averages into one repository never share a blob.
func interopDump(seed uint64) (dump, edited []byte) {
	var b bytes.Buffer
	rnd := rand.New(rand.NewPCG(seed, seed))
	fmt.Fprintf(&b, "-- escrow small-chunk interop dump %d\n", seed)
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "INSERT INTO orders VALUES (%d,'customer%d@example.com',%d.%02d,'%s');\n",
			i, rnd.IntN(5000), rnd.IntN(500), rnd.IntN(100), strings.Repeat("shipped ", 1+rnd.IntN(6)))
	}
	dump = b.Bytes()
	mid := len(dump)/2 + bytes.IndexByte(dump[len(dump)/2:], '\n') + 1
	edited = slices.Concat(dump[:mid], []byte("UPDATE orders SET status='refunded' WHERE id=7;\n"), dump[mid:],
		fmt.Appendf(nil, "INSERT INTO orders VALUES (999999,'new%d@example.com',1.00,'new');\n", seed))
	return dump, edited
}

// backupTree opens the repository as the agent does (snapshots listed
// before the index is loaded), picks the parent and backs up src.
func backupTree(t *testing.T, repoDir, src string) *backup.Result {
	t.Helper()
	ctx := context.Background()
	r := openRepo(t, repoDir)
	defer r.Close()
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := backup.Files(ctx, r, backup.Options{
		Paths: []string{src}, Host: interopHost,
		Parent: backup.FindParent(snaps, interopHost, []string{src}),
	})
	if err != nil {
		t.Fatalf("backup %s: %v", src, err)
	}
	return res
}

// backupStream streams data as name, cut in chunks of the given shape.
func backupStream(t *testing.T, repoDir string, data []byte, name string, shape chunk.Shape) *backup.Result {
	t.Helper()
	ctx := context.Background()
	r := openRepo(t, repoDir)
	defer r.Close()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	// Compressed as escrow db dump does: per blob, at every zstd level
	// (the fastest for a first dump, and all three in probes of a later
	// dump's changes), all of which restic must read.
	res, err := backup.Stream(ctx, r, bytes.NewReader(data), name,
		backup.Options{Host: interopHost, Chunks: shape, Compression: repo.CompressionStream})
	if err != nil {
		t.Fatalf("stream backup: %v", err)
	}
	return res
}

func openRepo(t *testing.T, dir string) *repo.Repository {
	t.Helper()
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), be, interopPassword, repo.Options{KDF: fastKDF})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type resticCmd struct {
	t    *testing.T
	bin  string
	repo string
}

// run runs restic and returns its standard output. The password goes in the
// environment: an argument would show in ps to every user of the machine.
func (c resticCmd) run(args ...string) []byte {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--repo", c.repo, "--no-cache"}, args...)...)
	env := []string{"RESTIC_PASSWORD=" + interopPassword}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESTIC_") { // no stray password file or repository
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		c.t.Fatalf("restic %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, tail(stdout.Bytes()), stderr.Bytes())
	}
	return stdout.Bytes()
}

func tail(b []byte) []byte {
	if len(b) > 4096 {
		return b[len(b)-4096:]
	}
	return b
}

// fillRandom fills b with bytes from a seeded generator: the same on every run.
func fillRandom(b []byte, seed byte) {
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(b)
}

func randomBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	fillRandom(b, seed)
	return b
}

func write(t *testing.T, root, rel string, data []byte, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is subject to umask
		t.Fatal(err)
	}
}

// makeInteropTree builds the source tree: the file sizes, types, modes and
// names a restore has to get right.
func makeInteropTree(t *testing.T, root string) {
	t.Helper()
	text := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog. 0123456789\n"), 100<<10/56+1)[:100<<10]
	a := randomBytes(8<<20, 2)
	repeats := bytes.Join([][]byte{a, a, randomBytes(4<<20, 3)}, nil) // 20 MiB, 8 of them repeated
	for _, f := range []struct {
		rel  string
		data []byte
		mode fs.FileMode
	}{
		{"empty", nil, 0o644},
		{"one-byte", []byte("x"), 0o644},
		{"docs/readme.txt", text, 0o644},
		{"docs/changelog.txt", []byte("v1: first\n"), 0o644},
		{"data/random-3m.bin", randomBytes(3<<20, 1), 0o600},
		{"data/repeats-20m.bin", repeats, 0o644},
		{"scripts/run.sh", []byte("#!/bin/sh\necho backup\n"), 0o755},
		{"private/secret.txt", []byte("db password is elsewhere\n"), 0o640},
		{"with space/a file name.txt", []byte("spaces\n"), 0o644},
		{"ünïcödé/文件 ☃.txt", []byte("unicode\n"), 0o644},
		{"nested/a/b/c/deep.txt", []byte("deep\n"), 0o644},
		{"hard/a.txt", []byte("one inode, two names\n"), 0o644},
	} {
		write(t, root, f.rel, f.data, f.mode)
	}
	mustDo(t, os.Chmod(filepath.Join(root, "private"), 0o750))
	mustDo(t, os.Link(filepath.Join(root, "hard/a.txt"), filepath.Join(root, "hard/b.txt")))
	mustDo(t, os.MkdirAll(filepath.Join(root, "links"), 0o755))
	mustDo(t, os.Symlink("../docs/readme.txt", filepath.Join(root, "links/to-readme")))
	mustDo(t, os.Symlink("../does/not/exist", filepath.Join(root, "links/dangling")))

	// A sparse file: 16 MiB long, with 4 KiB of data in the middle.
	mustDo(t, os.MkdirAll(filepath.Join(root, "disk"), 0o755))
	sparse := filepath.Join(root, "disk/sparse.img")
	f, err := os.Create(sparse)
	mustDo(t, err)
	mustDo(t, f.Truncate(16<<20))
	_, err = f.WriteAt(randomBytes(4<<10, 4), 8<<20)
	mustDo(t, err)
	mustDo(t, f.Close())

	if os.Geteuid() == 0 {
		// Owners other than the user running the backup survive a restore
		// (restic restores numeric IDs when run as root).
		mustDo(t, os.Lchown(filepath.Join(root, "private/secret.txt"), 1234, 5678))
	}
	setTimes(t, root, time.Date(2021, 2, 3, 4, 5, 6, 123456789, time.UTC))
}

// modifyInteropTree changes two files (one in size, one in place) and adds one.
func modifyInteropTree(t *testing.T, root string) {
	t.Helper()
	write(t, root, "docs/changelog.txt", []byte("v1: first\nv2: second\n"), 0o644)
	f, err := os.OpenFile(filepath.Join(root, "data/random-3m.bin"), os.O_WRONLY, 0)
	mustDo(t, err)
	_, err = f.WriteAt([]byte("changed in place"), 1<<20)
	mustDo(t, err)
	mustDo(t, f.Close())
	write(t, root, "docs/new.txt", []byte("added for the third backup\n"), 0o644)
	// Give the changed entries new, distinct mtimes with nanoseconds.
	at := time.Date(2022, 6, 7, 8, 9, 10, 987654321, time.UTC)
	for i, rel := range []string{"docs/changelog.txt", "data/random-3m.bin", "docs/new.txt", "docs", "data"} {
		setTime(t, filepath.Join(root, rel), at.Add(time.Duration(i)*time.Second+time.Duration(i)))
	}
}

// setTimes gives every entry below root (root included) its own mtime with
// nanoseconds, deepest first so that setting a file's time cannot be undone
// by a later change in its folder.
func setTimes(t *testing.T, root string, base time.Time) {
	t.Helper()
	var paths []string
	mustDo(t, filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	}))
	sort.SliceStable(paths, func(i, j int) bool {
		return strings.Count(paths[i], string(filepath.Separator)) > strings.Count(paths[j], string(filepath.Separator))
	})
	for i, p := range paths {
		setTime(t, p, base.Add(time.Duration(i)*time.Minute+time.Duration(i)))
	}
}

// setTime sets atime and mtime without following symlinks.
func setTime(t *testing.T, p string, mt time.Time) {
	t.Helper()
	ts := []unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatalf("set times of %s: %v", p, err)
	}
}

func countFiles(t *testing.T, root string) int {
	t.Helper()
	n := 0
	mustDo(t, filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	}))
	return n
}

// compareRestored checks that restic restored src into dst exactly: same
// entries, types, permission bits, owners, mtimes (to the nanosecond),
// contents, link targets, and hard links that share an inode.
func compareRestored(t *testing.T, src, dst string) {
	t.Helper()
	inodes := map[uint64][]string{} // source inode → names
	mustDo(t, filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		want, err := os.Lstat(p)
		if err != nil {
			return err
		}
		got, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			t.Errorf("%s: not restored: %v", rel, err)
			return nil
		}
		compareEntry(t, rel, p, filepath.Join(dst, rel), want, got)
		if want.Mode().IsRegular() {
			ino := want.Sys().(*syscall.Stat_t).Ino
			inodes[uint64(ino)] = append(inodes[uint64(ino)], rel)
		}
		return nil
	}))
	for _, names := range inodes {
		for _, other := range names[1:] {
			a, errA := os.Lstat(filepath.Join(dst, names[0]))
			b, errB := os.Lstat(filepath.Join(dst, other))
			if errA != nil || errB != nil || !os.SameFile(a, b) {
				t.Errorf("%s and %s are hard links in the source but not after restore", names[0], other)
			}
		}
	}
	// Nothing restored that the source does not have.
	mustDo(t, filepath.WalkDir(dst, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dst, p)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(filepath.Join(src, rel)); err != nil {
			t.Errorf("%s: restored but not in the source", rel)
		}
		return nil
	}))
}

func compareEntry(t *testing.T, rel, srcPath, dstPath string, want, got fs.FileInfo) {
	t.Helper()
	if want.Mode().Type() != got.Mode().Type() {
		t.Errorf("%s: type %v, want %v", rel, got.Mode().Type(), want.Mode().Type())
		return
	}
	const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	if want.Mode().Type() != fs.ModeSymlink && want.Mode()&permBits != got.Mode()&permBits {
		t.Errorf("%s: mode %v, want %v", rel, got.Mode(), want.Mode())
	}
	if !want.ModTime().Equal(got.ModTime()) {
		t.Errorf("%s: mtime %s, want %s", rel, got.ModTime().Format(time.RFC3339Nano), want.ModTime().Format(time.RFC3339Nano))
	}
	ws, gs := want.Sys().(*syscall.Stat_t), got.Sys().(*syscall.Stat_t)
	if os.Geteuid() == 0 && (ws.Uid != gs.Uid || ws.Gid != gs.Gid) {
		t.Errorf("%s: owner %d:%d, want %d:%d", rel, gs.Uid, gs.Gid, ws.Uid, ws.Gid)
	}
	switch {
	case want.Mode().IsRegular():
		a, err := os.ReadFile(srcPath)
		mustDo(t, err)
		b, err := os.ReadFile(dstPath)
		mustDo(t, err)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: restored content differs (%d bytes, want %d)", rel, len(b), len(a))
		}
	case want.Mode().Type() == fs.ModeSymlink:
		a, err := os.Readlink(srcPath)
		mustDo(t, err)
		b, err := os.Readlink(dstPath)
		mustDo(t, err)
		if a != b {
			t.Errorf("%s: link target %q, want %q", rel, b, a)
		}
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// TestInterruptedBackups kills backups at random moments, with SIGKILL (a
// crash or power loss) and SIGINT (a clean stop), and checks after each that
// the repository is valid for escrow and for restic, and at the end that the
// next backup completes and restores exactly.
func TestInterruptedBackups(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	restic := testenv.RequireBinary(t, "restic")
	dir := t.TempDir()
	src := filepath.Join(dir, "site")
	makeSite(t, src, 3, 4)
	repoDir := filepath.Join(dir, "repo")
	c := newCLI(t, repoDir)
	c.ok("init")
	rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
	seed := rnd.Int63()
	t.Logf("seed %d", seed)
	rnd = rand.New(rand.NewSource(seed))

	// Each round adds new data, so every backup uploads packs and indexes.
	grow := func(i int) {
		data := make([]byte, 12<<20+rnd.Intn(8<<20))
		rnd.Read(data)
		if err := os.WriteFile(filepath.Join(src, "wp-content", "uploads", "round"+strconv.Itoa(i)+".bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, "wp-config.php"), []byte("<?php // round "+strconv.Itoa(i)+"\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	backupArgs := []string{"--pack-size", "1", "backup", src}

	c.ok(backupArgs...)
	// The baseline is a round like the others: the fastest of two, so that
	// random delays up to 1.2 times it mostly land inside a backup.
	baseline := time.Duration(1<<63 - 1)
	for i := -2; i < 0; i++ {
		grow(i)
		start := time.Now()
		c.ok(backupArgs...)
		baseline = min(baseline, time.Since(start))
	}
	t.Logf("baseline backup: %v", baseline)

	resticEnv := append(append([]string(nil), c.env...), "RESTIC_PASSWORD_FILE="+strings.TrimPrefix(c.env[3], "ESCROW_PASSWORD_FILE="))
	resticCheck := func(args ...string) {
		t.Helper()
		cmd := exec.Command(restic, append([]string{"-r", repoDir, "--no-cache"}, args...)...)
		cmd.Env = resticEnv
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "no errors were found") {
			t.Fatalf("restic %v: %v\n%s", args, err, out)
		}
	}

	const rounds = 24
	killed := 0
	for i := 1; i <= rounds; i++ {
		grow(i)
		sig := syscall.SIGKILL
		if i%4 == 0 {
			sig = syscall.SIGINT
		}
		delay := time.Duration(rnd.Int63n(int64(baseline) * 12 / 10))
		cmd := exec.Command(escrowBin, backupArgs...)
		cmd.Env = c.env
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		_ = cmd.Process.Signal(sig)
		err := cmd.Wait()
		if err != nil {
			killed++
		}
		t.Logf("round %d: %v after %v: %v", i, sig, delay, err)

		// Whatever happened, the repository is valid: every listed snapshot
		// is whole (check walks them all) and every indexed pack is stored.
		c.ok("check")
		if i%6 == 0 {
			c.ok("check", "--read-data")
		}
		// A killed process leaves its lock; restic reads without one.
		resticCheck("--no-lock", "check")
	}
	if killed < rounds/4 {
		t.Errorf("only %d of %d backups were interrupted: the delays are too long to test anything", killed, rounds)
	}

	// The next run completes with no manual step (it releases the killed
	// processes' locks with records, never deleting), and restores
	// exactly. restic's exclusive check wants no lock files at all: the
	// owner's cleanup removes them.
	c.ok(backupArgs...)
	c.ok("unlock")
	resticCheck("check", "--read-data")
	c.ok("check", "--read-data")
	target := t.TempDir()
	c.ok("restore", "latest", "--target", target, "--verify")
	want := digest(t, src)
	sameTree(t, want, digest(t, filepath.Join(target, src)))
}

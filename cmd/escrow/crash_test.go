package main

import (
	"math/rand"
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
	testenv.RequireBinary(t, "restic")
	dir := t.TempDir()
	src := filepath.Join(dir, "site")
	makeSite(t, src, 3, 4)
	repoDir := filepath.Join(dir, "repo")
	c := newCLI(t, repoDir)
	c.ok("init")
	rnd := rand.New(rand.NewSource(testSeed(t)))

	// Each round adds new data, so every backup uploads packs and indexes.
	grow := func(i int) { growSite(t, src, rnd, "round"+strconv.Itoa(i), 12<<20, 8<<20) }
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

	const rounds = 24
	killed := 0
	for i := 1; i <= rounds; i++ {
		grow(i)
		sig := syscall.SIGKILL
		if i%4 == 0 {
			sig = syscall.SIGINT
		}
		delay := time.Duration(rnd.Int63n(int64(baseline) * 12 / 10))
		p := c.start(nil, backupArgs...)
		time.Sleep(delay)
		_ = p.cmd.Process.Signal(sig)
		err := p.cmd.Wait()
		if err != nil {
			killed++
		}
		t.Logf("round %d: %v after %v: %v", i, sig, delay, err)

		// Whatever happened, the repository is valid: every listed snapshot
		// is whole (check walks them all) and every indexed pack is stored.
		// A killed process leaves its lock; restic reads without one.
		crashChecks(t, c, i%6 == 0)
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
	if out, err := newResticFor(t, c).run("correct horse battery staple", "check", "--read-data"); err != nil || !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check --read-data with no locks left: %v\n%s", err, out)
	}
	c.ok("check", "--read-data")
	restoresExactly(t, c, src)
}

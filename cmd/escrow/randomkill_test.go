package main

import (
	"math/rand"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// TestRandomKill sends SIGKILL at random moments to backups, database
// dumps and prunes of one repository (50 kills in the quick tier, 500 in
// the long one). After every prune kill, after every fifth other kill and
// at the end, escrow and restic must find the repository valid, and a
// recovery backup run right then must complete without any manual step and
// store none of the blobs the repository already indexed. At the end the
// site and the database restore exactly.
func TestRandomKill(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	testenv.RequireBinary(t, "restic")
	sqlite3 := testenv.RequireBinary(t, "sqlite3")
	target, checkEvery := 50, 5
	if testenv.Long() {
		target, checkEvery = 500, 5
	}
	rnd := rand.New(rand.NewSource(testSeed(t)))

	dir := t.TempDir()
	src := filepath.Join(dir, "site")
	makeSite(t, src, 21, 2)
	db := sqliteSource(t, dir, 8000)
	dbRows := 8000
	// A killed SQLite dump leaves its consistent copy of the database in
	// the temporary folder: keep those in the test's.
	c := newCLI(t, filepath.Join(dir, "repo"), "TMPDIR="+t.TempDir())
	c.ok("init")
	in := c.inspector()

	backupArgs := []string{"--pack-size", "1", "backup", src}
	dumpArgs := []string{"--pack-size", "1", "db", "dump", "--type", "sqlite", "--path", db, "--name", "app"}
	// Packs of killed runs are fair game at once: prune's grace period is
	// for backups still running, and these are all dead.
	pruneArgs := []string{"--pack-size", "1", "prune", "--max-unused", "0%", "--grace", "0s"}
	// Each round's new data replaces one of three files, so forget and
	// prune have old data to remove.
	grow := func(i int) { growSite(t, src, rnd, "round"+strconv.Itoa(i%3), 2<<20, 2<<20) }
	moreRows := func() {
		addRows(t, sqlite3, db, dbRows, 500)
		dbRows += 500
	}

	// Baselines: the fastest of two clean runs, so that random delays up to
	// 1.2 times them mostly land inside a run.
	timed := func(prepare func(), args []string) time.Duration {
		best := time.Duration(1<<63 - 1)
		for range 2 {
			prepare()
			start := time.Now()
			c.ok(args...)
			best = min(best, time.Since(start))
		}
		return best
	}
	baseline := map[string]time.Duration{
		"backup": timed(func() { grow(rnd.Int()) }, backupArgs),
		"dump":   timed(moreRows, dumpArgs),
	}
	c.ok("forget", "--keep-last", "2")
	baseline["prune"] = timed(func() { grow(rnd.Int()); c.ok(backupArgs...); c.ok("forget", "--keep-last", "2") }, pruneArgs)
	t.Logf("baselines: %v", baseline)

	var kills, rounds, checks int
	killsOf := map[string]int{}
	recover := func() {
		// The check right after a kill, then a recovery run that must
		// finish and reuse everything the index lists.
		checks++
		mid := in.state()
		grow(rounds)
		c.ok(backupArgs...)
		after := in.state()
		if again, _ := reuploaded(mid, after); len(again) > 0 {
			t.Errorf("after kill %d the recovery backup stored %d indexed blobs again", kills, len(again))
		}
	}
	for kills < target && rounds < 3*target {
		rounds++
		op, args := "backup", backupArgs
		switch r := rnd.Intn(10); {
		case r < 2:
			op, args = "dump", dumpArgs
			moreRows()
		case r < 3:
			op, args = "prune", pruneArgs
			c.ok("forget", "--keep-last", "2")
		default:
			grow(rounds)
		}
		delay := time.Duration(rnd.Int63n(int64(baseline[op]) * 12 / 10))
		p := c.start(nil, args...)
		time.Sleep(delay)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		err := p.cmd.Wait()
		if !killedBy(err, syscall.SIGKILL) {
			// It ended before the signal: then it must have succeeded,
			// after whatever the kills before it left behind.
			if err != nil {
				t.Fatalf("round %d: %s after earlier kills: %v\n%s", rounds, op, err, p.out.String())
			}
			continue
		}
		kills++
		killsOf[op]++
		switch {
		case op == "prune":
			crashChecks(t, c, true)
			recover()
		case kills%checkEvery == 0:
			crashChecks(t, c, false)
			recover()
		}
	}
	t.Logf("%d kills in %d rounds (%v), %d checks with a recovery run", kills, rounds, killsOf, checks)
	if kills < target {
		t.Errorf("only %d kills in %d rounds: the delays are too long to test anything", kills, rounds)
	}

	// The end: every command completes without a manual step, the
	// repository reads whole, and both sources restore exactly.
	c.ok(backupArgs...)
	c.ok(dumpArgs...)
	c.ok("forget", "--keep-last", "2")
	c.ok(pruneArgs...)
	crashChecks(t, c, true)
	restoresExactly(t, c, src)
	restoresDB(t, c, "app", db)
}

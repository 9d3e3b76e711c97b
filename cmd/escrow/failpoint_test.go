//go:build unix

package main

import (
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/failpoint"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// failpointRun is one kill at a named step and what followed it, for the
// figures the test logs.
type failpointRun struct {
	name                 string
	killedStored         int64 // bytes of packs the killed run left in the store
	committed            int64 // of its new blobs, the bytes its index files list
	clean                int64 // bytes of new blobs the increment needed in all
	nextUploaded         int64 // bytes of packs the next run stored
	snapshotsAfterKill   int
	snapshotsBeforeStart int
}

// TestFailpoint kills escrow (SIGKILL, from inside, see internal/failpoint)
// at each named step of a first and of an incremental backup, and checks
// after each kill that every listed snapshot is whole and the repository
// valid for escrow and restic (both reading all data), that the next run
// completes without any manual step and restores exactly, and that it
// stores again none of the blobs the killed run had committed.
func TestFailpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	testenv.RequireBinary(t, "restic")
	// Each step on its own repository, four at a time: each case spends
	// most of its time waiting for the processes it runs.
	sem := make(chan struct{}, 4)
	var mu sync.Mutex
	var runs []failpointRun
	record := func(r failpointRun) {
		mu.Lock()
		runs = append(runs, r)
		mu.Unlock()
	}
	t.Cleanup(func() {
		for _, r := range runs {
			t.Logf("%-34s killed run left %8d B (committed %8d B); next run stored %8d B of %8d B; snapshots %d→%d",
				r.name, r.killedStored, r.committed, r.nextUploaded, r.clean, r.snapshotsBeforeStart, r.snapshotsAfterKill)
		}
	})
	for _, step := range failpoint.Steps() {
		// The quick tier kills at one hit of each step; the long tier at
		// several, which reach different states of the run.
		counts := []int{failpointCount[step]}
		if testenv.Long() {
			counts = failpointLongCounts[step]
		}
		for _, n := range counts {
			for _, incremental := range []bool{false, true} {
				name := fmt.Sprintf("%s:%d/first", step, n)
				if incremental {
					name = fmt.Sprintf("%s:%d/incremental", step, n)
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					sem <- struct{}{}
					defer func() { <-sem }()
					var r failpointRun
					fp := failpoint.EnvVar + "=" + string(step) + ":" + strconv.Itoa(n)
					switch step {
					case failpoint.StateWrite:
						r = failpointAgent(t, fp, incremental)
					case failpoint.DumpMid:
						r = failpointDump(t, fp, incremental)
					default:
						r = failpointBackup(t, step, fp, incremental)
					}
					r.name = name
					record(r)
				})
			}
		}
	}
}

// failpointCount is the hit of each step that kills in the quick tier:
// past the first where a run passes the step more than once, so that some
// work is done and some is not.
var failpointCount = map[failpoint.Step]int{
	failpoint.ChunkRead:         2,
	failpoint.PackSealed:        2,
	failpoint.PackUploadMid:     2,
	failpoint.PackUploaded:      2,
	failpoint.IndexUploaded:     1,
	failpoint.SnapshotUploadMid: 1,
	failpoint.SnapshotUploaded:  1,
	failpoint.DumpMid:           8,
	// The agent writes its status before it backs up and both cache and
	// status as it goes; the third write falls after the first upload.
	failpoint.StateWrite: 3,
}

// failpointLongCounts are the hits the long tier kills at: every one a
// run of the test's size passes (one index and one snapshot per run, at
// least two packs (data and tree), two chunks of an incremental (its
// chunk count depends on the repository's random chunker polynomial),
// three state writes of an agent before it idles).
var failpointLongCounts = map[failpoint.Step][]int{
	failpoint.ChunkRead:         {1, 2},
	failpoint.PackSealed:        {1, 2},
	failpoint.PackUploadMid:     {1, 2},
	failpoint.PackUploaded:      {1, 2},
	failpoint.IndexUploaded:     {1},
	failpoint.SnapshotUploadMid: {1},
	failpoint.SnapshotUploaded:  {1},
	failpoint.DumpMid:           {1, 4, 8, 16},
	failpoint.StateWrite:        {1, 2, 3},
}

// afterIndex reports whether the kill comes after the run's index is
// stored: the next run then has nothing left to upload.
func afterIndex(step failpoint.Step) bool {
	return step == failpoint.IndexUploaded || step == failpoint.SnapshotUploadMid || step == failpoint.SnapshotUploaded
}

// failpointBackup kills `escrow backup` at step. The steps with a
// half-sent request run against MinIO, so the PUT cut off is a real one.
func failpointBackup(t *testing.T, step failpoint.Step, fp string, incremental bool) failpointRun {
	dir := t.TempDir()
	src := filepath.Join(dir, "site")
	makeSite(t, src, 11, 2)
	var c *cli
	if step == failpoint.PackUploadMid || step == failpoint.SnapshotUploadMid {
		srv := testenv.MinIO(t)
		c = newCLI(t, srv.URL(srv.NewBucket(t), "site"), srv.Env()...)
	} else {
		c = newCLI(t, filepath.Join(dir, "repo"))
	}
	c.ok("init")
	args := []string{"--pack-size", "1", "backup", src}
	if incremental {
		c.ok(args...)
		growSite(t, src, rand.New(rand.NewSource(12)), "incremental", 2<<20, 0)
	}
	return killAndRecover(t, c, step, fp, args, func() { restoresExactly(t, c, src) })
}

// failpointDump kills `escrow db dump` of a SQLite database part way
// through reading the dump.
func failpointDump(t *testing.T, fp string, incremental bool) failpointRun {
	dir := t.TempDir()
	db := sqliteSource(t, dir, 15000)
	// The killed dump leaves its copy of the database in the temporary
	// folder: keep it in the test's.
	c := newCLI(t, filepath.Join(dir, "repo"), "TMPDIR="+t.TempDir())
	c.ok("init")
	args := []string{"--pack-size", "1", "db", "dump", "--type", "sqlite", "--path", db, "--name", "app"}
	if incremental {
		c.ok(args...)
		addRows(t, testenv.RequireBinary(t, "sqlite3"), db, 15000, 8000)
	}
	return killAndRecover(t, c, failpoint.DumpMid, fp, args, func() { restoresDB(t, c, "app", db) })
}

// killAndRecover runs args with the failpoint fp (at step) armed, requires the process to die
// by SIGKILL, checks the repository, runs args again and checks that
// nothing committed was stored again and that restore gives the source.
func killAndRecover(t *testing.T, c *cli, step failpoint.Step, fp string, args []string, restores func()) failpointRun {
	t.Helper()
	in := c.inspector()
	before := in.state()
	r := failpointRun{snapshotsBeforeStart: len(c.snapshots())}
	p := c.start([]string{fp}, args...)
	err := p.cmd.Wait()
	if !killedBy(err, syscall.SIGKILL) {
		t.Fatalf("escrow %s with %s: want death by SIGKILL, got %v\n%s", strings.Join(args, " "), fp, err, p.out.String())
	}
	if !strings.Contains(p.out.String(), "failpoint "+string(step)) {
		t.Fatalf("killed, but not at %s:\n%s", step, p.out.String())
	}
	mid := in.state()
	r.snapshotsAfterKill = len(c.snapshots())
	if step == failpoint.SnapshotUploaded {
		if r.snapshotsAfterKill != r.snapshotsBeforeStart+1 {
			t.Errorf("killed after the snapshot upload: %d snapshots, want %d", r.snapshotsAfterKill, r.snapshotsBeforeStart+1)
		}
	} else if r.snapshotsAfterKill != r.snapshotsBeforeStart {
		t.Errorf("killed at %s: %d snapshots listed, want %d (no snapshot before its end)", step, r.snapshotsAfterKill, r.snapshotsBeforeStart)
	}
	crashChecks(t, c, true)

	// The next run needs no unlock or repair: the dead process's lock is
	// recognised as stale.
	c.ok(args...)
	after := in.state()
	_, r.killedStored = mid.newPacks(before)
	r.committed = mid.blobBytes(before)
	r.clean = after.blobBytes(before)
	_, r.nextUploaded = after.newPacks(mid)
	again, dataBlobs := reuploaded(mid, after)
	if len(again) > 0 {
		t.Errorf("the next run stored %d blobs again that the killed run had committed (first %v)", len(again), again[0])
	}
	// What the next run stores is what was not committed, plus the pack
	// headers around it (a few per cent and a few KiB per pack).
	if limit := (r.clean-r.committed)*21/20 + 64<<10; r.nextUploaded > limit {
		t.Errorf("the next run stored %d bytes; %d of the %d needed were committed, so at most %d were due", r.nextUploaded, r.committed, r.clean, limit)
	}
	// Killed after the index was stored, the next run has no data left to
	// store: only the trees of the folders above the source, whose times
	// other tests' temporary folders keep changing.
	if afterIndex(step) && dataBlobs != 0 {
		t.Errorf("killed at %s, after the index was stored, yet the next run stored %d data blobs (%d bytes of packs)", step, dataBlobs, r.nextUploaded)
	}
	crashChecks(t, c, false)
	restores()
	return r
}

// failpointAgent kills the agent at a local state or cache write, then
// restarts it without the failpoint and waits for it to catch up.
func failpointAgent(t *testing.T, fp string, incremental bool) failpointRun {
	s := newAgentSetup(t)
	if incremental {
		p := s.start(t)
		s.settled(t, p)
		if err := p.stop(syscall.SIGTERM); err != nil {
			t.Fatalf("agent exit after SIGTERM: %v", err)
		}
		growSite(t, s.src, rand.New(rand.NewSource(13)), "incremental", 2<<20, 0)
	}
	in := s.c.inspector()
	before := in.state()
	r := failpointRun{snapshotsBeforeStart: len(s.c.snapshots())}
	p := s.start(t, fp)
	select {
	case err := <-p.done:
		if !killedBy(err, syscall.SIGKILL) || !strings.Contains(p.logText(), "failpoint state-write") {
			t.Fatalf("agent with %s: want death by SIGKILL at the failpoint, got %v\n%s", fp, err, p.logText())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("agent with %s still runs after 2 minutes\n%s", fp, p.logText())
	}
	mid := in.state()
	r.snapshotsAfterKill = len(s.c.snapshots())
	crashChecks(t, s.c, true)

	p = s.start(t)
	s.settled(t, p)
	if err := p.stop(syscall.SIGTERM); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	after := in.state()
	_, r.killedStored = mid.newPacks(before)
	r.committed = mid.blobBytes(before)
	r.clean = after.blobBytes(before)
	_, r.nextUploaded = after.newPacks(mid)
	if again, _ := reuploaded(mid, after); len(again) > 0 {
		t.Errorf("the restarted agent stored %d blobs again that the killed one had committed", len(again))
	}
	crashChecks(t, s.c, false)
	s.requireLatestIsTree(t, fmt.Sprintf("a kill at %s", fp))
	return r
}

// TestFailpointUnknownStep: a misspelt step stops escrow before it does
// anything, naming the valid steps, rather than passing for a step that
// was never reached.
func TestFailpointUnknownStep(t *testing.T) {
	repoDir := filepath.Join(t.TempDir(), "repo")
	c := newCLI(t, repoDir, failpoint.EnvVar+"=pack-upload")
	r := c.run(nil, "init")
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown step "pack-upload"`) || !strings.Contains(r.stderr, "pack-upload-mid, pack-uploaded") {
		t.Fatalf("escrow init with %s=pack-upload: exit %d\n%s", failpoint.EnvVar, r.code, r.stderr)
	}
	if _, err := os.Stat(repoDir); err == nil {
		t.Fatal("the repository was created")
	}
}

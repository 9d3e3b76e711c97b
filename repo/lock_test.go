package repo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// countingBackend counts the requests that matter to locking.
type countingBackend struct {
	remote.Backend
	lockLoads atomic.Int64 // lock files read (each one is decrypted)
	lists     atomic.Int64
	removes   atomic.Int64
	refuse    bool // Remove fails as a store denying deletes does
	// loseAnswers makes Save of a lock file store it and then fail, as an
	// upload whose answer the network lost.
	loseAnswers atomic.Bool
}

func (c *countingBackend) Save(ctx context.Context, h remote.Handle, data []byte) error {
	err := c.Backend.Save(ctx, h, data)
	if err == nil && h.Type == remote.LockFile && c.loseAnswers.Load() {
		return fmt.Errorf("save %s: connection reset by peer", h)
	}
	return err
}

func (c *countingBackend) Load(ctx context.Context, h remote.Handle, off, n int64) (io.ReadCloser, error) {
	if h.Type == remote.LockFile {
		c.lockLoads.Add(1)
	}
	return c.Backend.Load(ctx, h, off, n)
}

func (c *countingBackend) List(ctx context.Context, t remote.FileType, fn func(remote.FileInfo) error) error {
	c.lists.Add(1)
	return c.Backend.List(ctx, t, fn)
}

func (c *countingBackend) Remove(ctx context.Context, h remote.Handle) error {
	c.removes.Add(1)
	if c.refuse {
		return fmt.Errorf("remove %s: %w: Access Denied", h, remote.ErrPermanent)
	}
	return c.Backend.Remove(ctx, h)
}

// lockStore is a repository on MinIO that several handles open, as several
// processes would.
type lockStore struct {
	keyStore
}

func newLockStore(t *testing.T) lockStore {
	t.Helper()
	s := lockStore{minioKeyStore(t)}
	r, err := repo.Init(context.Background(), s.create(t), "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	return s
}

// handle opens the repository with its own lock memory; opts may set the
// lock clock and timing.
func (s lockStore) handle(t *testing.T, lo repo.LockOptions) (*repo.Repository, *countingBackend) {
	t.Helper()
	be := &countingBackend{Backend: s.open(t)}
	opts := fastKDF
	opts.Locks = lo
	r, err := repo.Open(context.Background(), be, "secret", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, be
}

func (s lockStore) names(t *testing.T, ft remote.FileType) []string {
	t.Helper()
	var names []string
	if err := s.open(t).List(context.Background(), ft, func(fi remote.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return names
}

func mustLock(t *testing.T, r *repo.Repository, exclusive bool) *repo.Held {
	t.Helper()
	h, err := r.Lock(context.Background(), exclusive)
	if err != nil {
		t.Fatalf("lock (exclusive %v): %v", exclusive, err)
	}
	return h
}

func mustUnlock(t *testing.T, h *repo.Held) {
	t.Helper()
	if err := h.Unlock(context.Background()); err != nil {
		t.Fatalf("unlock: %v", err)
	}
}

func requireLocked(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("%s: err %v, want ErrLocked", what, err)
	}
	if !strings.Contains(err.Error(), "lock by PID") {
		t.Errorf("%s: the error does not name the holder: %v", what, err)
	}
}

func TestLockSharedLocksCoexist(t *testing.T) {
	s := newLockStore(t)
	r1, be1 := s.handle(t, repo.LockOptions{})
	r2, _ := s.handle(t, repo.LockOptions{})
	h1 := mustLock(t, r1, false)
	h2 := mustLock(t, r2, false)
	mustUnlock(t, h1)
	mustUnlock(t, h2)
	// Releasing wrote records and deleted nothing.
	if got := len(s.names(t, remote.LockFile)); got != 2 {
		t.Errorf("%d lock files after two shared locks, want 2", got)
	}
	if got := len(s.names(t, remote.ReleaseFile)); got != 2 {
		t.Errorf("%d release records, want 2", got)
	}
	if n := be1.removes.Load(); n != 0 {
		t.Errorf("a shared lock holder sent %d deletes", n)
	}
}

func TestLockExclusiveConflicts(t *testing.T) {
	s := newLockStore(t)
	r1, be1 := s.handle(t, repo.LockOptions{})
	r2, be2 := s.handle(t, repo.LockOptions{})

	shared := mustLock(t, r1, false)
	_, err := r2.Lock(context.Background(), true)
	requireLocked(t, err, "exclusive while a shared lock is held")
	mustUnlock(t, shared)

	ex := mustLock(t, r1, true)
	_, err = r2.Lock(context.Background(), false)
	requireLocked(t, err, "shared while an exclusive lock is held")
	_, err = r2.Lock(context.Background(), true)
	requireLocked(t, err, "exclusive while an exclusive lock is held")
	// The refusals were found before writing anything.
	if n := be2.removes.Load(); n != 0 {
		t.Errorf("the refused locker sent %d deletes", n)
	}
	mustUnlock(t, ex)
	// The owner-side exclusive holder deletes its own lock.
	if n := be1.removes.Load(); n != 1 {
		t.Errorf("the exclusive holder sent %d deletes, want 1 (its own lock)", n)
	}
	h := mustLock(t, r2, true)
	mustUnlock(t, h)
}

// TestLockRace has two writers write their locks before either checks:
// both must see the other and give up.
func TestLockRace(t *testing.T) {
	s := newLockStore(t)
	r1, _ := s.handle(t, repo.LockOptions{})
	r2, be2 := s.handle(t, repo.LockOptions{})
	ctx := context.Background()
	hx, err := repo.WriteLock(r1, ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := repo.WriteLock(r2, ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	requireLocked(t, repo.CheckLockConflict(r1, ctx, true), "exclusive writer checking after both wrote")
	requireLocked(t, repo.CheckLockConflict(r2, ctx, false), "shared writer checking after both wrote")
	mustUnlock(t, hx)
	mustUnlock(t, hs)
	if n := be2.removes.Load(); n != 0 {
		t.Errorf("the shared writer sent %d deletes", n)
	}

	// The same through Lock, really at once, many times: never both.
	for i := range 10 {
		var wg sync.WaitGroup
		var got [2]*repo.Held
		var errs [2]error
		start := make(chan struct{})
		for j, r := range []*repo.Repository{r1, r2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[j], errs[j] = r.Lock(ctx, j == 0)
			}()
		}
		close(start)
		wg.Wait()
		if got[0] != nil && got[1] != nil {
			t.Fatalf("round %d: an exclusive and a shared lock were both granted", i)
		}
		for j := range got {
			if got[j] != nil {
				mustUnlock(t, got[j])
			} else if !errors.Is(errs[j], repo.ErrLocked) {
				t.Fatalf("round %d: %v", i, errs[j])
			}
		}
	}
}

func TestLockReleasedIsIgnored(t *testing.T) {
	s := newLockStore(t)
	r1, _ := s.handle(t, repo.LockOptions{})
	r2, _ := s.handle(t, repo.LockOptions{})
	mustUnlock(t, mustLock(t, r1, false))
	// The file is still there, but released.
	if got := len(s.names(t, remote.LockFile)); got != 1 {
		t.Fatalf("%d lock files, want 1", got)
	}
	live, err := r2.Locks(context.Background())
	if err != nil || len(live) != 0 {
		t.Fatalf("locks after release: %v, %v; want none", live, err)
	}
	mustUnlock(t, mustLock(t, r2, true))
}

func TestLockStaleAfter30Minutes(t *testing.T) {
	s := newLockStore(t)
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) repo.LockOptions {
		return repo.LockOptions{Now: func() time.Time { return t0.Add(d) }}
	}
	r1, _ := s.handle(t, at(0))
	held := mustLock(t, r1, true)
	defer mustUnlock(t, held)

	r2, _ := s.handle(t, at(29*time.Minute))
	_, err := r2.Lock(context.Background(), false)
	requireLocked(t, err, "29 minutes after an exclusive lock")

	r3, _ := s.handle(t, at(31*time.Minute))
	mustUnlock(t, mustLock(t, r3, false))
}

func TestLockCheckMemoizes(t *testing.T) {
	s := newLockStore(t)
	ctx := context.Background()
	for range 3 { // released
		r, _ := s.handle(t, repo.LockOptions{})
		mustUnlock(t, mustLock(t, r, false))
	}
	holder, _ := s.handle(t, repo.LockOptions{})
	held := mustLock(t, holder, false)
	defer mustUnlock(t, held)

	r, be := s.handle(t, repo.LockOptions{})
	live, err := r.Locks(ctx)
	if err != nil || len(live) != 1 {
		t.Fatalf("locks: %v, %v; want the one held", live, err)
	}
	if n := be.lockLoads.Load(); n != 4 {
		t.Errorf("first check read %d lock files, want 4", n)
	}
	be.lockLoads.Store(0)
	be.lists.Store(0)
	if live, err := r.Locks(ctx); err != nil || len(live) != 1 {
		t.Fatalf("second check: %v, %v", live, err)
	}
	if n := be.lockLoads.Load(); n != 0 {
		t.Errorf("second check decrypted %d old lock files, want 0", n)
	}
	// One listing of locks/, one of the release records (a live lock
	// of another holder may have been released since).
	if n := be.lists.Load(); n != 2 {
		t.Errorf("second check made %d listings, want 2", n)
	}
	other, _ := s.handle(t, repo.LockOptions{})
	mustUnlock(t, mustLock(t, other, false))
	be.lockLoads.Store(0)
	if _, err := r.Locks(ctx); err != nil {
		t.Fatal(err)
	}
	if n := be.lockLoads.Load(); n != 1 {
		t.Errorf("after one new lock file, the check read %d, want 1", n)
	}
	// A handle whose only live lock is its own lists locks/ alone.
	mustUnlock(t, held)
	mine := mustLock(t, r, false)
	defer mustUnlock(t, mine)
	be.lists.Store(0)
	if _, err := r.Locks(ctx); err != nil {
		t.Fatal(err)
	}
	if n := be.lists.Load(); n != 1 {
		t.Errorf("with only its own lock live, a check made %d listings, want 1", n)
	}
}

func TestLockRefreshSupersedes(t *testing.T) {
	s := newLockStore(t)
	r1, _ := s.handle(t, repo.LockOptions{Refresh: 100 * time.Millisecond})
	r2, _ := s.handle(t, repo.LockOptions{})
	h := mustLock(t, r1, false)
	time.Sleep(450 * time.Millisecond)
	files := len(s.names(t, remote.LockFile))
	if files < 3 {
		t.Fatalf("%d lock files after 4 refresh periods, want at least 3", files)
	}
	live, err := r2.Locks(context.Background())
	if err != nil || len(live) != 1 {
		t.Fatalf("locks of a refreshed holder: %v, %v; want exactly one", live, err)
	}
	mustUnlock(t, h)
	// One record releases the whole chain. A second is written when the
	// unlock cut a refresh's upload short: the store may have kept it.
	files = len(s.names(t, remote.LockFile))
	if got := len(s.names(t, remote.ReleaseFile)); got < 1 || got > 2 || got >= files {
		t.Errorf("%d release records for a chain of %d lock files, want 1 (2 if a refresh was cut short)", got, files)
	}
	r3, _ := s.handle(t, repo.LockOptions{})
	if live, err := r3.Locks(context.Background()); err != nil || len(live) != 0 {
		t.Errorf("locks after release, seen by a new handle: %v, %v; want none", live, err)
	}
}

// A refresh whose answer was lost may still be stored: it is newer than the
// holder's last known file, so Unlock must release it as well, or it would
// count as a live lock for 30 minutes.
func TestLockRefreshWithLostAnswer(t *testing.T) {
	s := newLockStore(t)
	r1, be := s.handle(t, repo.LockOptions{Refresh: 100 * time.Millisecond})
	h := mustLock(t, r1, false)
	be.loseAnswers.Store(true)
	time.Sleep(250 * time.Millisecond) // at least one refresh stored but reported failed
	mustUnlock(t, h)
	if files := len(s.names(t, remote.LockFile)); files < 2 {
		t.Fatalf("%d lock files, want the first and a refresh whose answer was lost", files)
	}
	r2, _ := s.handle(t, repo.LockOptions{})
	if live, err := r2.Locks(context.Background()); err != nil || len(live) != 0 {
		t.Errorf("locks after release: %v, %v; want none", live, err)
	}
}

func TestRemoveStaleLocks(t *testing.T) {
	s := newLockStore(t)
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour)
	old, _ := s.handle(t, repo.LockOptions{Now: func() time.Time { return t0 }})
	stale := mustLock(t, old, false) // stale: an hour old, never released
	defer mustUnlock(t, stale)
	chain, _ := s.handle(t, repo.LockOptions{Refresh: 100 * time.Millisecond})
	h := mustLock(t, chain, false)
	time.Sleep(250 * time.Millisecond)
	mustUnlock(t, h) // released, with superseded files
	live, _ := s.handle(t, repo.LockOptions{})
	keep := mustLock(t, live, false)
	defer mustUnlock(t, keep)

	before := len(s.names(t, remote.LockFile))
	owner, _ := s.handle(t, repo.LockOptions{})
	n, err := owner.RemoveStaleLocks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != before-1 || len(s.names(t, remote.LockFile)) != 1 {
		t.Errorf("removed %d of %d lock files, %d left; want all but the live one", n, before, len(s.names(t, remote.LockFile)))
	}
	if got := s.names(t, remote.ReleaseFile); len(got) != 0 {
		t.Errorf("release records left: %v", got)
	}
	if l, err := owner.Locks(ctx); err != nil || len(l) != 1 {
		t.Errorf("after cleanup: %v, %v; want the live lock", l, err)
	}
	// The live holder still counts, and nothing is left to remove.
	if n, err := owner.RemoveStaleLocks(ctx); n != 0 || err != nil {
		t.Errorf("second cleanup: %d, %v", n, err)
	}
}

func TestRemoveStaleLocksNeedsDeleteRights(t *testing.T) {
	s := newLockStore(t)
	r, _ := s.handle(t, repo.LockOptions{})
	mustUnlock(t, mustLock(t, r, false))
	host, be := s.handle(t, repo.LockOptions{})
	be.refuse = true
	_, err := host.RemoveStaleLocks(context.Background())
	if err == nil || !strings.Contains(err.Error(), "owner's credentials") {
		t.Errorf("cleanup without delete rights: %v; want an error naming the fix", err)
	}
}

func TestLockExclusiveWaitsForShared(t *testing.T) {
	s := newLockStore(t)
	ctx := context.Background()
	agent, _ := s.handle(t, repo.LockOptions{})
	shared := mustLock(t, agent, false)
	prune, _ := s.handle(t, repo.LockOptions{Poll: 100 * time.Millisecond})
	go func() {
		time.Sleep(600 * time.Millisecond)
		_ = shared.Unlock(ctx)
	}()
	start := time.Now()
	h, err := prune.LockExclusive(ctx, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("LockExclusive returned after %v, before the shared lock was released", d)
	}
	// While it is held, no shared lock is granted.
	_, err = agent.Lock(ctx, false)
	requireLocked(t, err, "shared lock during LockExclusive")
	mustUnlock(t, h)
}

func TestLockExclusiveTimesOut(t *testing.T) {
	s := newLockStore(t)
	ctx := context.Background()
	agent, _ := s.handle(t, repo.LockOptions{})
	shared := mustLock(t, agent, false)
	prune, be := s.handle(t, repo.LockOptions{Poll: 100 * time.Millisecond})
	be.refuse = true // and its own lock cannot be deleted: it is released
	_, err := prune.LockExclusive(ctx, 700*time.Millisecond)
	requireLocked(t, err, "LockExclusive with a shared lock held throughout")
	if !strings.Contains(err.Error(), "waited 700ms for 1 shared lock") || !strings.Contains(err.Error(), "shared lock by PID") {
		t.Errorf("the error does not say what it waited for: %v", err)
	}
	if got := len(s.names(t, remote.ReleaseFile)); got != 1 {
		t.Errorf("%d release records after giving up with deletes refused, want 1", got)
	}
	// Its exclusive lock no longer counts.
	r, _ := s.handle(t, repo.LockOptions{})
	mustUnlock(t, mustLock(t, r, false))
	mustUnlock(t, shared)
	// Another exclusive lock fails at once, without waiting.
	ex := mustLock(t, r, true)
	defer mustUnlock(t, ex)
	start := time.Now()
	_, err = prune.LockExclusive(ctx, time.Minute)
	requireLocked(t, err, "LockExclusive with another exclusive lock")
	if time.Since(start) > 10*time.Second {
		t.Errorf("LockExclusive waited for another exclusive lock")
	}
}

// A lock left on this host by a process that is gone is released (never
// deleted) by the next locker, so an off-host prune need not wait for it.
func TestLockReleasesDeadProcessLocks(t *testing.T) {
	s := newLockStore(t)
	ctx := context.Background()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatalf("run true(1): %v", err)
	}
	host, _ := os.Hostname()
	r, _ := s.handle(t, repo.LockOptions{})
	if _, err := r.SaveJSON(ctx, remote.LockFile, &repo.Lock{Time: time.Now(), Hostname: host, PID: gone.Process.Pid}); err != nil {
		t.Fatal(err)
	}
	next, be := s.handle(t, repo.LockOptions{})
	h := mustLock(t, next, false)
	if n := be.removes.Load(); n != 0 {
		t.Errorf("%d deletes", n)
	}
	mustUnlock(t, h)
	if got := len(s.names(t, remote.ReleaseFile)); got != 2 {
		t.Errorf("%d release records, want 2 (the dead process's and the next locker's)", got)
	}
}

// TestLockRestic: restic still reads a repository locked the escrow way,
// sees escrow's lock files, and honours a fresh shared lock; a released
// one keeps blocking restic's exclusive operations until the owner removes
// it (restic knows nothing of release records).
func TestLockRestic(t *testing.T) {
	s := newLockStore(t)
	ctx := context.Background()
	r, _ := s.handle(t, repo.LockOptions{Refresh: 200 * time.Millisecond})
	h := mustLock(t, r, false)
	time.Sleep(300 * time.Millisecond) // a superseded file too

	out, err := s.restic(t, "secret", "list", "locks")
	if err != nil {
		t.Fatalf("restic list locks: %v\n%s", err, out)
	}
	for _, name := range s.names(t, remote.LockFile) {
		if !strings.Contains(out, name) {
			t.Errorf("restic list locks does not show %s:\n%s", name, out)
		}
	}
	if out, err := s.restic(t, "secret", "--no-lock", "check"); err != nil || !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check with escrow's lock files and release records: %v\n%s", err, out)
	}
	// restic 0.14's check and prune lock exclusively: both give way.
	for _, cmd := range []string{"check", "prune"} {
		out, err = s.restic(t, "secret", cmd)
		if err == nil || !strings.Contains(out, "already locked") {
			t.Fatalf("restic %s while escrow holds a shared lock: %v\n%s", cmd, err, out)
		}
		t.Logf("restic %s, refused as it should be: %s", cmd, strings.TrimSpace(out))
	}

	mustUnlock(t, h)
	if out, err := s.restic(t, "secret", "--no-lock", "check"); err != nil || !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check with a release record in escrow/released/: %v\n%s", err, out)
	}
	if out, err := s.restic(t, "secret", "prune"); err == nil || !strings.Contains(out, "already locked") {
		t.Fatalf("restic prune after escrow released its lock (restic should still see it): %v\n%s", err, out)
	}
	owner, _ := s.handle(t, repo.LockOptions{})
	if n, err := owner.RemoveStaleLocks(ctx); err != nil || n == 0 {
		t.Fatalf("RemoveStaleLocks: %d, %v", n, err)
	}
	if out, err := s.restic(t, "secret", "prune"); err != nil {
		t.Fatalf("restic prune after escrow unlock: %v\n%s", err, out)
	}
	if out, err := s.restic(t, "secret", "check"); err != nil || !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check after escrow unlock: %v\n%s", err, out)
	}
}

// A lock file nobody can read blocks escrow (it cannot know what it
// protects) with an error naming the fix, and the owner's cleanup removes
// it.
func TestLockUnreadable(t *testing.T) {
	s := newLockStore(t)
	ctx := context.Background()
	garbage := []byte("not an encrypted lock file, but named by its hash")
	name := sha256.Sum256(garbage)
	if err := s.open(t).Save(ctx, remote.Handle{Type: remote.LockFile, Name: hex.EncodeToString(name[:])}, garbage); err != nil {
		t.Fatal(err)
	}
	r, _ := s.handle(t, repo.LockOptions{})
	_, err := r.Lock(ctx, false)
	if err == nil || !strings.Contains(err.Error(), "escrow unlock") {
		t.Fatalf("lock with an unreadable lock file: %v; want an error naming escrow unlock", err)
	}
	owner, _ := s.handle(t, repo.LockOptions{})
	if n, err := owner.RemoveStaleLocks(ctx); n != 1 || err != nil {
		t.Fatalf("RemoveStaleLocks: %d, %v; want the unreadable file removed", n, err)
	}
	mustUnlock(t, mustLock(t, r, false))
}

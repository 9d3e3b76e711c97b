package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// Locking never deletes on the backing-up side: the host's credentials may
// only put, get and list. A lock file is restic's (so restic honours it);
// it is refreshed by writing a new file that names the one it supersedes,
// and released by writing an empty escrow/released/<lock id> record. escrow
// treats a superseded or released lock as gone at once; restic, which knows
// neither, treats every lock file as held until it is stale. Only the owner
// deletes lock files (RemoveStaleLocks), and an exclusive holder may delete
// its own. docs/design.md, "Locks", has the rules and the race analysis.

// Lock is a file under locks/. Backups take shared locks; operations that
// delete (prune) take an exclusive one. A lock is stale staleAfter after
// its time, or at once if its process is gone from this host.
type Lock struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Hostname  string    `json:"hostname"`
	Username  string    `json:"username"`
	PID       int       `json:"pid"`
	UID       uint32    `json:"uid,omitempty"`
	GID       uint32    `json:"gid,omitempty"`
	// Supersedes is the lock file this one refreshes. restic ignores the
	// field; escrow treats the superseded file as gone, so a holder is
	// released by one record for its newest file.
	Supersedes *ID `json:"escrow_supersedes,omitempty"`
}

const (
	staleAfter   = 30 * time.Minute // restic's rule
	refreshEvery = 5 * time.Minute  // restic's interval
	pollEvery    = 30 * time.Second // LockExclusive re-lists this often
)

// LockOptions tune locking. The zero value is restic's timing and the
// system clock.
type LockOptions struct {
	// Now is the clock that stamps lock files and judges staleness.
	Now func() time.Time
	// Refresh is how often a held lock is rewritten (5 minutes).
	Refresh time.Duration
	// Poll is how often LockExclusive looks again at the shared locks it
	// waits for (30 seconds).
	Poll time.Duration
}

func (o *LockOptions) fill() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh <= 0 {
		o.Refresh = refreshEvery
	}
	if o.Poll <= 0 {
		o.Poll = pollEvery
	}
}

// ErrLocked means another process holds a conflicting lock.
var ErrLocked = errors.New("repository is locked")

// Stale reports whether the lock no longer protects anything: its time is
// more than 30 minutes before now, or it was taken on this host (hostname)
// by a process that is gone.
func (l *Lock) Stale(now time.Time, hostname string) bool {
	if now.Sub(l.Time) > staleAfter {
		return true
	}
	return l.deadProcess(hostname)
}

func (l *Lock) deadProcess(hostname string) bool {
	if l.Hostname != hostname || l.PID <= 0 {
		return false
	}
	p, err := os.FindProcess(l.PID)
	if err != nil {
		return true
	}
	return p.Signal(syscall.Signal(0)) != nil
}

func (l *Lock) String() string {
	kind := "shared"
	if l.Exclusive {
		kind = "exclusive"
	}
	return fmt.Sprintf("%s lock by PID %d on %s by %s, refreshed %s", kind, l.PID, l.Hostname, l.Username, l.Time.Format(time.RFC3339))
}

// Held is a lock this process holds; Unlock releases it.
type Held struct {
	r     *Repository
	mu    sync.Mutex
	lock  Lock // the newest file's content
	id    ID   // the newest file
	chain []ID // every file this holder wrote, oldest first
	// unsure are refreshes whose upload failed or was cancelled: the store
	// may have kept them all the same, so Unlock releases them too.
	unsure []ID
	done   chan struct{}
	cancel context.CancelFunc
	gone   bool // released
}

// Time is when the newest lock file was written: the lock protects until
// 30 minutes after it.
func (h *Held) Time() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.lock.Time
}

// Lock takes a shared or exclusive lock and refreshes it in the background
// until Unlock. It writes the lock file, then looks for conflicting locks
// (write, then check: two processes locking at once see each other), and
// gives the lock up again when it finds one. It never deletes: locks left
// on this host by dead processes are released with a record, so a backup
// killed with SIGKILL blocks neither the next one nor an off-host prune.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Held, error) {
	// A cheap look first, so that a locked repository costs no write.
	if err := r.conflict(ctx, exclusive); err != nil {
		return nil, err
	}
	h, err := r.writeLock(ctx, exclusive)
	if err != nil {
		return nil, err
	}
	if err := r.conflict(ctx, exclusive); err != nil {
		return nil, errors.Join(err, h.Unlock(ctx))
	}
	return h, nil
}

// LockExclusive takes an exclusive lock for an operation that deletes
// (prune), waiting up to wait for the shared locks it finds to be released
// or to go stale. Shared holders see the exclusive lock on their next
// check and give way; new ones back off. It fails at once if another
// exclusive lock is held. A process killed while holding a shared lock
// delays it by at most 30 minutes, the time its lock takes to go stale.
func (r *Repository) LockExclusive(ctx context.Context, wait time.Duration) (*Held, error) {
	if err := r.conflictExclusive(ctx); err != nil {
		return nil, err
	}
	h, err := r.writeLock(ctx, true)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	logged := false
	for {
		live, err := r.Locks(ctx)
		if err != nil {
			return nil, errors.Join(err, h.Unlock(ctx))
		}
		if others := filterLocks(live, true); len(others) > 0 {
			return nil, errors.Join(lockedError(others, "wait for it to finish"), h.Unlock(ctx))
		}
		if len(live) == 0 {
			return h, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			err := fmt.Errorf("%w: waited %v for %s to be released: %s (an agent gives way within a minute once its snapshot is done; a process that is gone stops counting 30 minutes after its last refresh: try again later or with a longer wait)",
				ErrLocked, wait, plural(len(live), "shared lock"), describeLocks(live))
			return nil, errors.Join(err, h.Unlock(ctx))
		}
		if !logged {
			r.log.Info("waiting for shared locks to be released", "locks", len(live), "holders", describeLocks(live), "max_wait", wait)
			logged = true
		}
		t := time.NewTimer(min(left, r.lockOpts.Poll))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, errors.Join(ctx.Err(), h.Unlock(context.WithoutCancel(ctx)))
		case <-t.C:
		}
	}
}

// conflict returns ErrLocked, naming the holders, if a lock that conflicts
// with a shared (or exclusive) one is held by someone else.
func (r *Repository) conflict(ctx context.Context, exclusive bool) error {
	live, err := r.Locks(ctx)
	if err != nil {
		return err
	}
	if !exclusive {
		live = filterLocks(live, true)
	}
	if len(live) > 0 {
		return lockedError(live, "wait for it to finish; an exclusive lock whose process is gone stops counting 30 minutes after its last refresh")
	}
	return nil
}

func (r *Repository) conflictExclusive(ctx context.Context) error {
	live, err := r.Locks(ctx)
	if err != nil {
		return err
	}
	if ex := filterLocks(live, true); len(ex) > 0 {
		return lockedError(ex, "wait for it to finish; a lock whose process is gone stops counting 30 minutes after its last refresh")
	}
	return nil
}

func filterLocks(locks []Lock, exclusive bool) []Lock {
	var out []Lock
	for _, l := range locks {
		if l.Exclusive == exclusive {
			out = append(out, l)
		}
	}
	return out
}

func lockedError(locks []Lock, fix string) error {
	return fmt.Errorf("%w: %s (%s)", ErrLocked, describeLocks(locks), fix)
}

func describeLocks(locks []Lock) string {
	var parts []string
	for _, l := range locks {
		parts = append(parts, l.String())
	}
	return strings.Join(parts, "; ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}

// writeLock writes a new lock file and starts refreshing it.
func (r *Repository) writeLock(ctx context.Context, exclusive bool) (*Held, error) {
	l := r.locks.template
	l.Time, l.Exclusive = r.lockOpts.Now(), exclusive
	id, err := r.SaveJSON(ctx, remote.LockFile, &l)
	if err != nil {
		return nil, fmt.Errorf("create lock: %w", err)
	}
	r.locks.addOwn(id)
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Held{r: r, lock: l, id: id, chain: []ID{id}, cancel: cancel, done: make(chan struct{})}
	go h.refresh(rctx)
	return h, nil
}

// refresh writes a new lock file every Refresh, each naming the one before.
// The superseded files are left for the owner to remove; they go stale on
// their own.
func (h *Held) refresh(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.r.lockOpts.Refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil {
				// Unlock came at the same tick: a refresh started now
				// would only add a file to release.
				return
			}
			h.mu.Lock()
			l := h.lock
			prev := h.id
			l.Time, l.Supersedes = h.r.lockOpts.Now(), &prev
			id, err := h.r.SaveJSON(ctx, remote.LockFile, &l)
			if err == nil {
				h.r.locks.addOwn(id)
				h.id, h.lock = id, l
				h.chain = append(h.chain, id)
			} else {
				h.r.locks.addOwn(id)
				h.unsure = append(h.unsure, id)
				if ctx.Err() == nil {
					h.r.log.Warn("could not refresh the repository lock; trying again in 5 minutes", "err", err)
				}
			}
			h.mu.Unlock()
		}
	}
}

// Unlock stops refreshing and releases the lock. A shared lock is released
// by a record naming its newest file (the others are superseded by it). An
// exclusive holder runs with the owner's credentials and deletes its lock
// files; a file it may not delete (Object Lock retention, a credential
// without delete rights) is released by a record instead.
func (h *Held) Unlock(ctx context.Context) error {
	if h == nil {
		return nil
	}
	h.cancel()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gone {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if h.lock.Exclusive {
		for _, id := range slices.Concat(h.chain, h.unsure) {
			err := h.r.be.Remove(ctx, remote.Handle{Type: remote.LockFile, Name: id.String()})
			if err == nil || remote.IsNotFound(err) {
				continue
			}
			h.r.log.Info("cannot delete the exclusive lock; releasing it with a record", "lock", id.Str(), "err", err)
			if rerr := h.r.release(ctx, id); rerr != nil {
				errs = append(errs, rerr)
			}
		}
	} else {
		if err := h.r.release(ctx, h.id); err != nil {
			errs = append(errs, err)
		}
		// A refresh that may have landed names a file newer than h.id,
		// which h.id's record does not release.
		for _, id := range h.unsure {
			if err := h.r.release(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	h.gone = true
	h.r.locks.dropOwn(slices.Concat(h.chain, h.unsure), h.lock.Time)
	return errors.Join(errs...)
}

// release writes the record that releases lock file id.
func (r *Repository) release(ctx context.Context, id ID) error {
	if err := r.be.Save(ctx, remote.Handle{Type: remote.ReleaseFile, Name: id.String()}, nil); err != nil {
		return fmt.Errorf("release lock %s: %w (it stops counting 30 minutes after its time)", id.Str(), err)
	}
	return nil
}

// lockTemplate is this process's identity in its lock files.
func lockTemplate() Lock {
	host, _ := os.Hostname()
	l := Lock{Hostname: host, PID: os.Getpid()}
	if u, err := user.Current(); err == nil {
		l.Username = u.Username
		if v, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			l.UID = uint32(v)
		}
		if v, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			l.GID = uint32(v)
		}
	}
	return l
}

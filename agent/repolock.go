package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/repo"
)

// The agent holds one shared repository lock for its lifetime instead of
// one per snapshot: with a store the host may not delete from, each lock
// costs a lock file and a release record, and an agent saves many small
// snapshots. Before each snapshot (and every LockPoll when idle) it looks
// for an exclusive lock, which only the owner's prune takes; finding one,
// it releases its lock, waits for the exclusive one to go, locks again and
// reloads what prune may have changed. docs/design.md, "Locks".

// repoLock is the agent's lock state; only the Run goroutine touches it.
type repoLock struct {
	held      *repo.Held
	reload    bool            // released since the index was loaded
	lastCheck time.Time       // last look for an exclusive lock
	stopped   <-chan struct{} // the agent is stopping: stop waiting
}

// lockFresh is how old the newest lock file may get before the agent locks
// anew: refreshes failed (the store was unreachable) long enough that the
// lock is about to go stale (30 minutes) and stop protecting anything.
const lockFresh = 25 * time.Minute

// lockCheckIn is how long until an idle agent looks for an exclusive lock.
func (a *Agent) lockCheckIn() time.Duration {
	return max(0, a.lock.lastCheck.Add(a.opts.LockPoll).Sub(a.opts.Now()))
}

// ensureLock makes sure the agent holds a shared lock that no exclusive
// lock waits for, and that its index and parents are valid after giving
// way to one. It costs one listing while nothing changes (repo.Locks
// remembers every lock file it read).
func (a *Agent) ensureLock(ctx context.Context) error {
	a.lock.lastCheck = a.opts.Now()
	if h := a.lock.held; h != nil {
		if a.opts.Now().Sub(h.Time()) >= lockFresh {
			a.log.Warn("the repository lock was not refreshed for 25 minutes; locking again and reloading the index")
		} else {
			locks, err := a.r.Locks(ctx)
			if err != nil {
				return fmt.Errorf("look for an exclusive lock: %w", err)
			}
			ex := slices.DeleteFunc(locks, func(l repo.Lock) bool { return !l.Exclusive })
			if len(ex) == 0 {
				return nil
			}
			a.log.Info("an exclusive lock is held (prune): releasing this agent's lock and pausing snapshots", "holder", ex[0].String())
		}
		a.releaseLock(ctx)
	}
	if err := a.acquire(ctx); err != nil {
		return err
	}
	if a.lock.reload {
		if err := a.reload(ctx); err != nil {
			return err
		}
		a.lock.reload = false
	}
	return nil
}

// releaseLock gives the lock up (a release record: the host never deletes).
func (a *Agent) releaseLock(ctx context.Context) {
	if a.lock.held == nil {
		return
	}
	if err := a.lock.held.Unlock(context.WithoutCancel(ctx)); err != nil {
		a.log.Warn("could not release the repository lock; it stops counting 30 minutes after its last refresh", "err", err)
	}
	a.lock.held, a.lock.reload = nil, true
}

// acquire takes a shared lock, waiting while an exclusive one is held.
func (a *Agent) acquire(ctx context.Context) error {
	logged := false
	for {
		h, err := a.r.Lock(ctx, false)
		if err == nil {
			a.lock.held = h
			if logged {
				a.log.Info("the exclusive lock is gone: snapshots resume")
			}
			return nil
		}
		if !errors.Is(err, repo.ErrLocked) {
			return fmt.Errorf("lock the repository: %w", err)
		}
		if !logged {
			a.log.Warn("waiting for an exclusive lock (prune) to be released before the next snapshot; changes stay pending", "err", err, "poll", a.opts.LockPoll)
			logged = true
		}
		a.writeStatus() // pending changes keep showing while it waits
		t := time.NewTimer(a.opts.LockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-a.lock.stopped:
			t.Stop()
			return context.Canceled
		case <-t.C:
		}
	}
}

// reload reads snapshots and index afresh after an exclusive holder had
// the repository: it may have removed or repacked blobs the in-memory index
// lists (deduplicating against them would lose data) and forgotten the
// snapshots the sources' next snapshots would build on.
func (a *Agent) reload(ctx context.Context) error {
	snaps, err := a.r.Snapshots(ctx)
	if err != nil {
		return fmt.Errorf("list snapshots after a prune: %w", err)
	}
	a.r.ResetIndex()
	if err := a.loadIndex(ctx); err != nil {
		return fmt.Errorf("load index after a prune: %w", err)
	}
	for _, s := range a.sources {
		if s.parent == nil || slices.ContainsFunc(snaps, func(sn *repo.Snapshot) bool { return sn.ID == s.parent.ID }) {
			continue
		}
		// An incremental snapshot takes what the watcher did not report
		// from its parent; with another parent that is wrong. Read all.
		s.parent = backup.FindParent(snaps, a.opts.Host, []string{s.Path})
		s.nextRescan, s.rescanWhy = time.Time{}, "parent snapshot removed"
		a.log.Info("the parent snapshot was removed (prune): the next snapshot reads everything", "source", s.Path)
	}
	return nil
}

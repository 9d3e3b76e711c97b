package repo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// lockBook remembers, per Repository, what it learnt of lock files, so that
// locks/ (which only the owner's maintenance shrinks) costs one listing
// plus the files new since the last look. A file's content never changes
// (its name is its hash), and a lock that is stale, released or superseded
// stays so: only live locks are judged again.
type lockBook struct {
	template Lock // this process's identity
	mu       sync.Mutex
	live     map[ID]Lock      // decrypted, not known to be gone
	dead     map[ID]time.Time // stale, released or superseded (time if known)
	own      map[ID]bool      // written by this Repository and not released
}

func newLockBook() *lockBook {
	return &lockBook{template: lockTemplate(), live: map[ID]Lock{}, dead: map[ID]time.Time{}, own: map[ID]bool{}}
}

func (b *lockBook) addOwn(id ID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.own[id] = true
}

func (b *lockBook) dropOwn(ids []ID, t time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		delete(b.own, id)
		b.dead[id] = t
	}
}

func (b *lockBook) kill(id ID) {
	t := b.dead[id]
	if l, ok := b.live[id]; ok {
		t = l.Time
		delete(b.live, id)
	}
	b.dead[id] = t
}

// Locks returns the locks of other holders that still count: neither
// stale, nor released, nor superseded by a newer file of the same holder.
// Locks left on this host by processes that are gone are released on the
// way (a record, never a delete).
func (r *Repository) Locks(ctx context.Context) ([]Lock, error) {
	ids, err := r.List(ctx, remote.LockFile)
	if err != nil {
		return nil, err
	}
	if err := r.learnLocks(ctx, ids); err != nil {
		return nil, err
	}
	return r.judgeLocks(ctx, ids)
}

// judgeLocks returns the locks among ids (already read) that still count.
func (r *Repository) judgeLocks(ctx context.Context, ids []ID) ([]Lock, error) {
	b := r.locks
	now := r.lockOpts.Now()
	var candidates []ID
	var orphans []ID // this host's, of dead processes, not yet stale by time
	b.mu.Lock()
	for _, id := range ids {
		l, ok := b.live[id]
		if !ok || b.own[id] {
			continue
		}
		switch {
		case now.Sub(l.Time) > staleAfter:
			b.kill(id)
		case l.deadProcess(b.template.Hostname):
			orphans = append(orphans, id)
			candidates = append(candidates, id)
		default:
			candidates = append(candidates, id)
		}
	}
	b.mu.Unlock()
	if len(candidates) == 0 {
		return nil, nil
	}
	released, err := r.releasedLocks(ctx)
	if err != nil {
		return nil, err
	}
	for _, id := range orphans {
		if released[id] {
			continue
		}
		if err := r.release(ctx, id); err != nil {
			return nil, fmt.Errorf("lock of a process gone from this host: %w", err)
		}
		r.log.Info("released the lock of a process that is gone from this host", "lock", id.Str())
		released[id] = true
	}
	var out []Lock
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range candidates {
		if released[id] {
			b.kill(id)
			continue
		}
		if l, ok := b.live[id]; ok {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b Lock) int { return a.Time.Compare(b.Time) })
	return out, nil
}

// learnLocks decrypts the listed lock files not seen before.
func (r *Repository) learnLocks(ctx context.Context, ids []ID) error {
	b := r.locks
	var unknown []ID
	b.mu.Lock()
	for _, id := range ids {
		_, live := b.live[id]
		_, dead := b.dead[id]
		if !live && !dead && !b.own[id] {
			unknown = append(unknown, id)
		}
	}
	b.mu.Unlock()
	for _, id := range unknown {
		var l Lock
		err := r.LoadJSON(ctx, remote.LockFile, id, &l)
		b.mu.Lock()
		switch {
		case remote.IsNotFound(err):
			b.dead[id] = time.Time{} // removed by the owner meanwhile
		case err != nil:
			b.mu.Unlock()
			return &badLockError{id, err}
		default:
			b.live[id] = l
		}
		b.mu.Unlock()
	}
	// A newer file of the same holder supersedes the one it names.
	b.mu.Lock()
	defer b.mu.Unlock()
	var superseded []ID
	for _, id := range unknown {
		if l, ok := b.live[id]; ok && l.Supersedes != nil && !b.own[*l.Supersedes] {
			superseded = append(superseded, *l.Supersedes)
		}
	}
	for _, id := range superseded {
		b.kill(id)
	}
	return nil
}

// releasedLocks lists the release records.
func (r *Repository) releasedLocks(ctx context.Context) (map[ID]bool, error) {
	ids, err := r.List(ctx, remote.ReleaseFile)
	if err != nil {
		return nil, err
	}
	m := make(map[ID]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m, nil
}

// RemoveStaleLocks deletes the lock files that no longer count (stale,
// released or superseded) and the release records of locks that are gone,
// and returns how many lock files it deleted. It is owner-side maintenance
// (escrow unlock, prune): it needs credentials allowed to delete. Locks
// this Repository holds are kept; lock files that cannot be decrypted
// (damaged, or written with another master key) are removed too.
func (r *Repository) RemoveStaleLocks(ctx context.Context) (int, error) {
	ids, err := r.List(ctx, remote.LockFile)
	if err != nil {
		return 0, err
	}
	var unreadable []ID
	for {
		err := r.learnLocks(ctx, ids)
		var bad *badLockError
		if err == nil {
			break
		}
		if !errors.As(err, &bad) || (!errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnauthenticated)) {
			return 0, err
		}
		// Nobody can honour a lock nobody can read: remove it below.
		r.log.Warn("removing a lock file that cannot be read", "lock", bad.id.Str(), "err", bad.err)
		unreadable = append(unreadable, bad.id)
		ids = slices.DeleteFunc(ids, func(x ID) bool { return x == bad.id })
	}
	if _, err := r.judgeLocks(ctx, ids); err != nil {
		return 0, err
	}
	released, err := r.releasedLocks(ctx)
	if err != nil {
		return 0, err
	}
	type gone struct {
		id ID
		t  time.Time
	}
	var remove []gone
	present := map[ID]bool{}
	b := r.locks
	b.mu.Lock()
	for _, id := range ids {
		present[id] = true
		if b.own[id] {
			continue
		}
		if released[id] {
			b.kill(id)
		}
		if t, ok := b.dead[id]; ok {
			remove = append(remove, gone{id, t})
		}
	}
	b.mu.Unlock()
	// Oldest first: a superseded file goes before the file that
	// supersedes it, so an interrupted run never leaves a superseded file
	// without its successor (it would count again until stale).
	slices.SortFunc(remove, func(a, b gone) int { return a.t.Compare(b.t) })
	for _, id := range unreadable {
		remove = append(remove, gone{id: id})
	}
	n := 0
	for _, g := range remove {
		err := r.be.Remove(ctx, remote.Handle{Type: remote.LockFile, Name: g.id.String()})
		if err != nil && !remote.IsNotFound(err) {
			return n, fmt.Errorf("remove lock %s: %w (removing locks deletes objects: run it with the owner's credentials, which may delete)", g.id.Str(), err)
		}
		n++
		delete(present, g.id)
		b.mu.Lock()
		delete(b.dead, g.id)
		b.mu.Unlock()
	}
	for id := range released {
		if present[id] {
			continue
		}
		err := r.be.Remove(ctx, remote.Handle{Type: remote.ReleaseFile, Name: id.String()})
		if err != nil && !remote.IsNotFound(err) {
			return n, fmt.Errorf("remove release record %s: %w (run it with the owner's credentials, which may delete)", id.Str(), err)
		}
	}
	return n, nil
}

// badLockError is a lock file that could not be read.
type badLockError struct {
	id  ID
	err error
}

func (e *badLockError) Error() string {
	return fmt.Sprintf("read lock %s: %v (if it is damaged, the owner removes it with escrow unlock)", e.id.Str(), e.err)
}

func (e *badLockError) Unwrap() error { return e.err }

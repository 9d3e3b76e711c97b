package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// Lock is a file under locks/. Backups take shared locks; operations that
// delete (prune) take an exclusive one. A lock is stale after staleAfter
// without refresh, or at once if its process is gone from this host.
type Lock struct {
	Time      time.Time `json:"time"`
	Exclusive bool      `json:"exclusive"`
	Hostname  string    `json:"hostname"`
	Username  string    `json:"username"`
	PID       int       `json:"pid"`
	UID       uint32    `json:"uid,omitempty"`
	GID       uint32    `json:"gid,omitempty"`
}

const (
	staleAfter   = 30 * time.Minute
	refreshEvery = 5 * time.Minute
)

// ErrLocked means another process holds a conflicting lock.
var ErrLocked = errors.New("repository is locked")

// Stale reports whether the lock no longer protects anything.
func (l *Lock) Stale(now time.Time, hostname string) bool {
	if now.Sub(l.Time) > staleAfter {
		return true
	}
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
	return fmt.Sprintf("%s lock by PID %d on %s by %s, taken %s", kind, l.PID, l.Hostname, l.Username, l.Time.Format(time.RFC3339))
}

// Held is a lock this process holds; Unlock releases it.
type Held struct {
	r      *Repository
	lock   Lock
	mu     sync.Mutex
	id     ID
	cancel context.CancelFunc
	done   chan struct{}
}

// Lock takes a shared or exclusive lock and refreshes it in the background
// until Unlock. Stale locks left on this host by dead processes are removed
// first, so a backup killed with SIGKILL does not block the next run.
func (r *Repository) Lock(ctx context.Context, exclusive bool) (*Held, error) {
	host, _ := os.Hostname()
	l := Lock{Time: time.Now(), Exclusive: exclusive, Hostname: host, PID: os.Getpid()}
	if u, err := user.Current(); err == nil {
		l.Username = u.Username
		if v, err := strconv.ParseUint(u.Uid, 10, 32); err == nil {
			l.UID = uint32(v)
		}
		if v, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			l.GID = uint32(v)
		}
	}
	if err := r.checkLocks(ctx, l, nil); err != nil {
		return nil, err
	}
	id, err := r.SaveJSON(ctx, remote.LockFile, &l)
	if err != nil {
		return nil, fmt.Errorf("create lock: %w", err)
	}
	// Another process may have locked at the same moment: look again.
	if err := r.checkLocks(ctx, l, &id); err != nil {
		_ = r.be.Remove(context.WithoutCancel(ctx), remote.Handle{Type: remote.LockFile, Name: id.String()})
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Held{r: r, lock: l, id: id, cancel: cancel, done: make(chan struct{})}
	go h.refresh(rctx)
	return h, nil
}

func (r *Repository) checkLocks(ctx context.Context, mine Lock, self *ID) error {
	ids, err := r.List(ctx, remote.LockFile)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, id := range ids {
		if self != nil && id == *self {
			continue
		}
		var other Lock
		if err := r.LoadJSON(ctx, remote.LockFile, id, &other); err != nil {
			if remote.IsNotFound(err) {
				continue // released meanwhile
			}
			return fmt.Errorf("read lock %s: %w", id.Str(), err)
		}
		if other.Stale(now, mine.Hostname) {
			if other.Hostname == mine.Hostname {
				// Ours and dead: clean up, but a store that forbids
				// deletes is fine too: a stale lock blocks nobody here.
				_ = r.be.Remove(ctx, remote.Handle{Type: remote.LockFile, Name: id.String()})
			}
			continue
		}
		if mine.Exclusive || other.Exclusive {
			return fmt.Errorf("%w: %s (wait for it to finish; if that process is gone, the lock expires 30 minutes after its last refresh)", ErrLocked, other.String())
		}
	}
	return nil
}

func (h *Held) refresh(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.mu.Lock()
			l := h.lock
			l.Time = time.Now()
			id, err := h.r.SaveJSON(ctx, remote.LockFile, &l)
			if err == nil {
				old := h.id
				h.id, h.lock = id, l
				_ = h.r.be.Remove(ctx, remote.Handle{Type: remote.LockFile, Name: old.String()})
			} else {
				h.r.log.Warn("could not refresh the repository lock", "err", err)
			}
			h.mu.Unlock()
		}
	}
}

// Unlock stops refreshing and removes the lock file.
func (h *Held) Unlock(ctx context.Context) error {
	if h == nil {
		return nil
	}
	h.cancel()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	err := h.r.be.Remove(context.WithoutCancel(ctx), remote.Handle{Type: remote.LockFile, Name: h.id.String()})
	if err != nil && !remote.IsNotFound(err) {
		return fmt.Errorf("remove lock %s: %w", h.id.Str(), err)
	}
	return nil
}

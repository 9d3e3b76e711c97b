// Package fleet reads the heartbeats of many agents from a bucket or folder,
// and optionally the newest snapshots of their repositories, and judges
// which hosts are silent or failing. It needs only read access.
package fleet

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/escrow-backup/escrow/agent/heartbeat"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// Store reads a bucket (or a folder) as a tree of folders, below the
// address the fleet view was given.
type Store interface {
	Location() string
	ListDir(ctx context.Context, dir string) (dirs []string, objects []remote.FileInfo, err error)
	GetKey(ctx context.Context, key string, limit int64) ([]byte, error)
}

// heartbeatDir is where a repository's agents write their heartbeats,
// relative to the repository's prefix.
var heartbeatDir = string(remote.HeartbeatFile)

// resticDirs are a repository's own folders; a scan does not look for
// further repositories inside them.
var resticDirs = []string{"data", "index", "keys", "locks", "snapshots", "escrow"}

// found is what a scan collected before judging it.
type found struct {
	mu        sync.Mutex
	beats     []*Host
	repos     []*Repository
	problems  []string
	truncated []string
}

func (f *found) problem(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

// scanner walks the tree: in every folder, the heartbeats in
// escrow/heartbeats, whether it is a repository, and (to MaxDepth) its
// sub-folders. Requests are bounded by sem; each folder and heartbeat is its
// own goroutine, all owned by wg.
type scanner struct {
	st   Store
	opts Options
	sem  chan struct{}
	wg   sync.WaitGroup
	out  *found
}

func (s *scanner) io(ctx context.Context, what string, op func() error) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	return remote.Retry(ctx, s.opts.Retry, s.st.Location(), what, op)
}

func (s *scanner) goFolder(ctx context.Context, dir string, depth int) {
	s.wg.Add(1)
	go func() { defer s.wg.Done(); s.folder(ctx, dir, depth) }()
}

func (s *scanner) folder(ctx context.Context, dir string, depth int) {
	var dirs []string
	var objects []remote.FileInfo
	err := s.io(ctx, "list "+show(dir), func() (err error) {
		dirs, objects, err = s.st.ListDir(ctx, dir)
		return err
	})
	if err != nil {
		s.out.problem("cannot list %s: %v", show(dir), err)
		return
	}
	isRepo := slices.Contains(dirs, "keys") && slices.ContainsFunc(objects, func(fi remote.FileInfo) bool { return fi.Name == "config" })
	if isRepo {
		rp := &Repository{Dir: dir}
		s.out.mu.Lock()
		s.out.repos = append(s.out.repos, rp)
		s.out.mu.Unlock()
		if s.opts.Snapshots != nil {
			s.wg.Add(1)
			go func() { defer s.wg.Done(); s.snapshots(ctx, rp) }()
		}
	}
	if slices.Contains(dirs, "escrow") {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.heartbeats(ctx, dir) }()
	}
	for _, d := range dirs {
		if isRepo && slices.Contains(resticDirs, d) || d == "escrow" {
			continue
		}
		if depth >= s.opts.MaxDepth {
			s.out.mu.Lock()
			s.out.truncated = append(s.out.truncated, join(dir, d))
			s.out.mu.Unlock()
			continue
		}
		s.goFolder(ctx, join(dir, d), depth+1)
	}
}

func (s *scanner) heartbeats(ctx context.Context, dir string) {
	hbDir := join(dir, heartbeatDir)
	var objects []remote.FileInfo
	err := s.io(ctx, "list "+hbDir, func() (err error) {
		_, objects, err = s.st.ListDir(ctx, hbDir)
		return err
	})
	if err != nil {
		s.out.problem("cannot list %s: %v", hbDir, err)
		return
	}
	for _, o := range objects {
		if !strings.HasSuffix(o.Name, heartbeat.Suffix) {
			continue
		}
		key := join(hbDir, o.Name)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var data []byte
			err := s.io(ctx, "load "+key, func() (err error) {
				data, err = s.st.GetKey(ctx, key, heartbeat.MaxSize)
				return err
			})
			if err != nil {
				s.out.problem("cannot read heartbeat %s: %v", key, err)
				return
			}
			hb, err := heartbeat.Parse(data)
			if err != nil {
				s.out.problem("heartbeat %s: %v (an agent of this version rewrites it within heartbeat_every)", key, err)
				return
			}
			s.out.mu.Lock()
			s.out.beats = append(s.out.beats, &Host{Dir: dir, Key: key, Heartbeat: hb})
			s.out.mu.Unlock()
		}()
	}
}

// snapshots reads the repository's snapshots and keeps the newest per
// host and paths.
func (s *scanner) snapshots(ctx context.Context, rp *Repository) {
	// Opening a repository runs scrypt (32 MiB): the slots bound memory
	// as well as requests.
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	snaps, err := s.opts.Snapshots(ctx, rp.Dir)
	<-s.sem
	if err != nil {
		rp.Error = err.Error()
		return
	}
	newest := map[string]*repo.Snapshot{}
	for _, sn := range snaps {
		k := sn.Hostname + "\x00" + strings.Join(sn.Paths, "\x00")
		if cur := newest[k]; cur == nil || sn.Time.After(cur.Time) {
			newest[k] = sn
		}
	}
	for _, sn := range newest {
		rp.Latest = append(rp.Latest, Latest{Host: sn.Hostname, Paths: sn.Paths, Time: sn.Time, ID: sn.ID.Str(), Tags: sn.Tags})
	}
	slices.SortFunc(rp.Latest, func(a, b Latest) int {
		return strings.Compare(a.Host+"\x00"+strings.Join(a.Paths, "\x00"), b.Host+"\x00"+strings.Join(b.Paths, "\x00"))
	})
	rp.Read = true
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return path.Join(dir, name)
}

// show names a folder in messages.
func show(dir string) string {
	if dir == "" {
		return "the top folder"
	}
	return dir
}

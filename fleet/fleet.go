package fleet

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/agent/heartbeat"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// Options tune a scan.
type Options struct {
	// Stale: a host whose newest heartbeat is older than this is silent.
	// Zero: 30 minutes, or three of the host's own heartbeat periods when
	// that is longer, so a host configured to report hourly is not silent
	// at 30 minutes.
	Stale time.Duration
	// Parallel bounds the requests in flight (default 32).
	Parallel int
	// MaxDepth is how many folders deep repositories are looked for below
	// the address (0: 4; negative: only the address itself).
	MaxDepth int
	// Snapshots, when set, lists the snapshots of the repository in the
	// folder dir; it needs the repository password.
	Snapshots func(ctx context.Context, dir string) ([]*repo.Snapshot, error)
	Retry     remote.RetryOptions
	Now       func() time.Time
}

// DefaultStale is Options.Stale's default.
const DefaultStale = 30 * time.Minute

// The states of a host, from best to worst.
const (
	StateOK      = "ok"
	StateFailing = "failing" // it reports, but a source or database has a problem
	StateStopped = "stopped" // its agent was stopped on purpose and writes no more heartbeats
	StateSilent  = "silent"  // no heartbeat for longer than Stale
)

// Report is the result of a scan.
type Report struct {
	Location string    `json:"location"`
	Time     time.Time `json:"time"`
	Stale    string    `json:"stale_after"`
	// StaleFixed is false when a host's own heartbeat period may extend
	// Stale (three periods).
	StaleFixed bool    `json:"stale_fixed"`
	Hosts      []*Host `json:"hosts"`
	// Repositories lists the repositories found, with their newest
	// snapshots when a password was given.
	Repositories []*Repository `json:"repositories"`
	// Problems are what could not be read; Truncated the folders not
	// looked into because they are deeper than MaxDepth.
	Problems  []string `json:"problems,omitempty"`
	Truncated []string `json:"truncated,omitempty"`
	// Counts of hosts by state.
	Silent  int `json:"silent"`
	Stopped int `json:"stopped"`
	Failing int `json:"failing"`
	OK      int `json:"ok"`
}

// Host is one agent, known by its heartbeat or, without one, by its
// snapshots.
type Host struct {
	Name string `json:"host"`
	// Dir is the folder (prefix) of the repository the host writes to;
	// Key the heartbeat's object, empty when there is none.
	Dir       string               `json:"dir"`
	Key       string               `json:"key,omitempty"`
	Heartbeat *heartbeat.Heartbeat `json:"heartbeat,omitempty"`
	State     string               `json:"state"`
	Problems  []string             `json:"problems,omitempty"`
	// Latest are the host's newest snapshots in its repository (with a
	// password only).
	Latest []Latest `json:"latest_snapshots,omitempty"`
}

// Repository is a repository found by the scan.
type Repository struct {
	Dir    string   `json:"dir"`
	Read   bool     `json:"read"`
	Error  string   `json:"error,omitempty"`
	Latest []Latest `json:"latest_snapshots,omitempty"`
}

// Latest is the newest snapshot of one host and set of paths.
type Latest struct {
	Host  string    `json:"host"`
	Paths []string  `json:"paths"`
	Time  time.Time `json:"time"`
	ID    string    `json:"id"`
	Tags  []string  `json:"tags,omitempty"`
}

// Unhealthy reports whether any host is silent, stopped or failing, or
// something could not be read.
func (r *Report) Unhealthy() bool {
	return r.Silent+r.Stopped+r.Failing > 0 || len(r.Problems) > 0
}

// Scan reads every heartbeat (and with opts.Snapshots, every repository's
// newest snapshots) below the store's address and judges each host.
func Scan(ctx context.Context, st Store, opts Options) (*Report, error) {
	fixed := opts.Stale > 0
	if !fixed {
		opts.Stale = DefaultStale
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 32
	}
	switch {
	case opts.MaxDepth == 0:
		opts.MaxDepth = 4
	case opts.MaxDepth < 0:
		opts.MaxDepth = 0
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &scanner{st: st, opts: opts, sem: make(chan struct{}, opts.Parallel), out: &found{}}
	s.goFolder(ctx, "", 0)
	s.wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("scan %s: %w", st.Location(), err)
	}
	rep := &Report{
		Location: st.Location(), Time: opts.Now().UTC(), Stale: opts.Stale.String(), StaleFixed: fixed,
		Hosts: s.out.beats, Repositories: s.out.repos, Problems: s.out.problems, Truncated: s.out.truncated,
	}
	rep.judge(opts)
	if len(rep.Hosts) == 0 && len(rep.Repositories) == 0 && len(rep.Problems) == 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("no heartbeat and no repository under %s (check the address; agents write their heartbeats to PREFIX/escrow/heartbeats/)", st.Location()))
	}
	return rep, nil
}

// judge sets each host's state, adds the hosts that only snapshots know
// of, and sorts everything for stable output: worst first, then by name.
func (r *Report) judge(opts Options) {
	now := opts.Now()
	for _, h := range r.Hosts {
		h.Name = h.Heartbeat.Host
		stale := opts.Stale
		if !r.StaleFixed {
			stale = max(stale, 3*h.Heartbeat.Every())
		}
		h.judge(now, stale)
	}
	for _, rp := range r.Repositories {
		if rp.Error != "" {
			r.Problems = append(r.Problems, fmt.Sprintf("repository %s: %s", show(rp.Dir), rp.Error))
		}
		for _, l := range rp.Latest {
			i := slices.IndexFunc(r.Hosts, func(h *Host) bool { return h.Dir == rp.Dir && h.Name == l.Host && h.Heartbeat != nil })
			if i < 0 {
				i = slices.IndexFunc(r.Hosts, func(h *Host) bool { return h.Dir == rp.Dir && h.Name == l.Host })
			}
			if i < 0 {
				// Snapshots without a heartbeat: a host whose agent never
				// reported here, or a server that vanished.
				r.Hosts = append(r.Hosts, &Host{Name: l.Host, Dir: rp.Dir, State: StateSilent,
					Problems: []string{"snapshots but no heartbeat in this repository: its agent is not running (or runs a version without heartbeats)"}})
				i = len(r.Hosts) - 1
			}
			r.Hosts[i].Latest = append(r.Hosts[i].Latest, l)
		}
	}
	rank := map[string]int{StateSilent: 0, StateStopped: 1, StateFailing: 2, StateOK: 3}
	slices.SortFunc(r.Hosts, func(a, b *Host) int {
		return cmp.Or(cmp.Compare(rank[a.State], rank[b.State]), strings.Compare(a.Name, b.Name), strings.Compare(a.Dir, b.Dir))
	})
	slices.SortFunc(r.Repositories, func(a, b *Repository) int { return strings.Compare(a.Dir, b.Dir) })
	slices.Sort(r.Problems)
	slices.Sort(r.Truncated)
	for _, h := range r.Hosts {
		switch h.State {
		case StateSilent:
			r.Silent++
		case StateStopped:
			r.Stopped++
		case StateFailing:
			r.Failing++
		default:
			r.OK++
		}
	}
}

// judge decides a host's state from its heartbeat: silent after stale.
func (h *Host) judge(now time.Time, stale time.Duration) {
	hb := h.Heartbeat
	age := now.Sub(hb.Time)
	switch {
	case hb.Stopped:
		h.State = StateStopped
		h.Problems = append(h.Problems, fmt.Sprintf("the agent was stopped %s ago", age.Round(time.Second)))
	case age > stale:
		h.State = StateSilent
		h.Problems = append(h.Problems, fmt.Sprintf("no heartbeat for %s (more than %s): the server or its agent is down", age.Round(time.Second), stale))
	}
	items := append(append([]heartbeat.Item(nil), hb.Sources...), hb.Databases...)
	for _, it := range items {
		if it.LastError != "" {
			h.Problems = append(h.Problems, fmt.Sprintf("%s: %s", it.Name, it.LastError))
		}
		fresh := time.Duration(it.FreshSeconds) * time.Second
		switch {
		case it.LastGood.IsZero() && it.LastError != "":
		case it.LastGood.IsZero():
			if fresh > 0 && !hb.Started.IsZero() && hb.Time.Sub(hb.Started) > fresh {
				h.Problems = append(h.Problems, fmt.Sprintf("%s: no good backup in the %s since the agent started, more than its target %s",
					it.Name, hb.Time.Sub(hb.Started).Round(time.Second), fresh))
			}
		case fresh > 0 && hb.Time.Sub(it.LastGood) > fresh:
			h.Problems = append(h.Problems, fmt.Sprintf("%s: last good backup %s before the heartbeat, more than its target %s",
				it.Name, hb.Time.Sub(it.LastGood).Round(time.Second), fresh))
		}
	}
	if h.State == "" {
		h.State = StateOK
		if len(h.Problems) > 0 {
			h.State = StateFailing
		}
	}
}

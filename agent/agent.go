// Package agent is the daemon that protects sources continuously: it
// watches their trees, saves an incremental snapshot a few seconds after
// each burst of changes, rescans everything on a schedule to prove the
// watcher missed nothing, and reports what it does in a status file.
//
// It receives an opened repository; it knows nothing of S3 or config files.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/escrow-backup/escrow/agent/watch"
	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/notify"
	"github.com/escrow-backup/escrow/repo"
)

// Priority names for Options.CPUPriority and Options.IOPriority.
const (
	PriorityNormal = "normal"
	PriorityLow    = "low"
	PriorityIdle   = "idle"
)

// Source is one tree to protect.
type Source struct {
	Path          string
	Excludes      []string
	Watch         bool
	OneFileSystem bool
	Tags          []string
	// FreshWithin is the source's target freshness: status and alerts
	// call it stale when it was last verified longer ago (default: twice
	// RescanEvery).
	FreshWithin time.Duration
}

// Options configure an agent. Zero durations take the defaults.
type Options struct {
	Sources     []Source
	Jobs        []Job
	Host        string
	QuietPeriod time.Duration // default 10s
	MaxDelay    time.Duration // default 60s
	RescanEvery time.Duration // default 6h
	// StopGrace is how long a snapshot in progress may run on after the
	// agent is told to stop, before it is cancelled (default 20s).
	StopGrace   time.Duration
	Parallelism int // files read at once; default 2
	CPUPriority string
	IOPriority  string
	StateDir    string
	// Repository is the repository's address as shown in status (without
	// credentials).
	Repository     string
	ProgramVersion string
	// LoadIndex loads the repository index, after the snapshots are listed
	// (restic's read order); r.LoadIndex by default.
	LoadIndex func(context.Context) error
	// LockPoll is how often an idle agent looks for an exclusive lock
	// (prune) to give way to, and a waiting one looks whether it is gone
	// (default 1 min).
	LockPoll time.Duration
	// HeartbeatEvery is how often a heartbeat is written to the store
	// (default 5m; negative: never).
	HeartbeatEvery time.Duration
	// KitConfirmed reports whether the owner confirmed the recovery kit,
	// for heartbeats and status; nil: unknown, reported as unconfirmed.
	KitConfirmed func() bool
	// Alerts receives problems and recoveries; nil: none are sent.
	Alerts       Alerter
	MassDeletion MassDeletion
	// Observer is told the figures of every snapshot and job (metrics);
	// nil: nobody.
	Observer Observer
	Logger   *slog.Logger
	Now      func() time.Time
}

func (o *Options) fill() {
	if o.QuietPeriod <= 0 {
		o.QuietPeriod = 10 * time.Second
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 60 * time.Second
	}
	if o.MaxDelay < o.QuietPeriod {
		o.MaxDelay = o.QuietPeriod
	}
	if o.RescanEvery <= 0 {
		o.RescanEvery = 6 * time.Hour
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 20 * time.Second
	}
	if o.Parallelism <= 0 {
		o.Parallelism = 2
	}
	if o.LockPoll <= 0 {
		o.LockPoll = time.Minute
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	o.MassDeletion.fill()
	if o.HeartbeatEvery == 0 {
		o.HeartbeatEvery = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Agent protects its sources until its context ends.
type Agent struct {
	r    *repo.Repository
	opts Options
	log  *slog.Logger

	watcher *watch.Watcher
	sources []*source
	jobs    []*job
	rescan  chan struct{}
	// beat asks for a heartbeat now: a backup failed or recovered, or the
	// first one after start finished.
	beat chan struct{}

	mu          sync.Mutex // guards status
	status      Status
	lastWritten time.Time
	// statusFailing: the last status write failed (logged once per episode).
	statusFailing bool

	loadIndex func(context.Context) error
	lock      repoLock // held for the agent's lifetime; see repolock.go
	// tamperProof is the escrow verdict last seen (nil: none yet), and
	// escrowWorse whether it went from tamper-proof to not; both owned by
	// the heartbeat goroutine.
	tamperProof *bool
	escrowWorse bool
}

// source is the agent's state for one Source.
type source struct {
	Source
	excluder *backup.Excluder
	root     *watch.Root // nil when not watched
	parent   *repo.Snapshot
	st       *SourceStatus // in Agent.status, guarded by Agent.mu

	nextRescan time.Time
	rescanWhy  string    // reason for an early rescan ("requested"), or ""
	retryAt    time.Time // after a failure, no attempt before this
	failures   int
	// files is how many files parent holds, known after the first full
	// rescan; it tells a mass deletion from a small one.
	files      int
	filesKnown bool
}

// New checks the options and prepares an agent; Run starts it.
func New(r *repo.Repository, opts Options) (*Agent, error) {
	opts.fill()
	if len(opts.Sources) == 0 && len(opts.Jobs) == 0 {
		return nil, errors.New("agent: no sources or jobs to run")
	}
	if opts.StateDir == "" {
		return nil, errors.New("agent: no state directory")
	}
	a := &Agent{r: r, opts: opts, log: opts.Logger, rescan: make(chan struct{}, 1), beat: make(chan struct{}, 1)}
	a.status = Status{PID: os.Getpid(), Version: opts.ProgramVersion, Repository: opts.Repository, Host: opts.Host}
	a.status.Sources = make([]SourceStatus, len(opts.Sources))
	for i, s := range opts.Sources {
		abs, err := filepath.Abs(s.Path)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Path, err)
		}
		s.Path = abs
		ex, err := backup.NewExcluder(s.Excludes)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Path, err)
		}
		if s.FreshWithin <= 0 {
			s.FreshWithin = 2 * opts.RescanEvery
		}
		a.status.Sources[i] = SourceStatus{Path: s.Path, FreshWithin: s.FreshWithin.String()}
		a.sources = append(a.sources, &source{Source: s, excluder: ex, st: &a.status.Sources[i]})
	}
	a.status.Jobs = make([]JobStatus, len(opts.Jobs))
	for i, j := range opts.Jobs {
		if j.Every <= 0 || j.Run == nil {
			return nil, fmt.Errorf("agent: job %s needs a period and a function", j.Name)
		}
		if j.FreshWithin <= 0 {
			j.FreshWithin = 2 * j.Every
		}
		a.status.Jobs[i] = JobStatus{Name: j.Name, Every: j.Every.String(), FreshWithin: j.FreshWithin.String()}
		a.jobs = append(a.jobs, &job{Job: j, st: &a.status.Jobs[i]})
	}
	return a, nil
}

// Rescan asks for a full rescan of every source as soon as possible.
func (a *Agent) Rescan() {
	select {
	case a.rescan <- struct{}{}:
	default:
	}
}

// Run protects the sources until ctx ends, then finishes or cancels the
// snapshot in progress (within StopGrace) and returns. The repository is
// valid whenever Run returns: a cancelled snapshot leaves indexed data and
// no snapshot.
func (a *Agent) Run(ctx context.Context) error {
	lock, err := lockState(a.opts.StateDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := lowerPriority(a.opts.CPUPriority, a.opts.IOPriority); err != nil {
		a.log.Warn("cannot lower the process priority; running at normal priority", "err", err)
	}

	// Work goes on for StopGrace after ctx ends, so that a snapshot that
	// is nearly done is saved rather than thrown away.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		a.log.Info("stopping: finishing the snapshot in progress", "grace", a.opts.StopGrace)
		time.AfterFunc(a.opts.StopGrace, cancelWork)
	})
	defer stopGrace()

	a.watcher, err = watch.New(a.log, a.opts.Now)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.watcher.Run() }()
	defer func() { a.watcher.Close(); wg.Wait() }()

	a.setStatus(func() { a.status.Started = a.opts.Now() })
	// Heartbeats run beside the backups, so a long first backup does not
	// make the host look silent; the last one says the agent stopped.
	beats, err := a.newBeater()
	if err != nil {
		return err
	}
	beatCtx, stopBeats := context.WithCancel(work)
	beatsDone := make(chan struct{})
	go func() { defer close(beatsDone); beats.run(beatCtx) }()
	defer func() {
		stopBeats()
		<-beatsDone
		beats.final(work)
	}()

	// One shared lock for the agent's lifetime, taken before the
	// snapshots are listed and the index is loaded.
	a.lock.stopped = ctx.Done()
	if err := a.acquire(work); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer a.releaseLock(work)
	snaps, err := a.r.Snapshots(work)
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	a.loadIndex = a.opts.LoadIndex
	if a.loadIndex == nil {
		a.loadIndex = a.r.LoadIndex
	}
	if err := a.loadIndex(work); err != nil {
		return fmt.Errorf("load index: %w", err)
	}
	for _, s := range a.sources {
		s.parent = backup.FindParent(snaps, a.opts.Host, []string{s.Path})
		// Watches first, then the first rescan: a change made while the
		// rescan runs is then either in it or reported by the watcher.
		if s.Watch {
			s.root, err = a.watcher.Add(s.Path, func(p string) bool { return s.excluder.Excluded(p) }, s.OneFileSystem)
			if err != nil {
				a.fail(s, err)
				continue
			}
		}
		a.setStatus(func() { a.refreshWatch(s) })
	}
	for _, s := range a.sources {
		if ctx.Err() != nil {
			break
		}
		if err := a.ensureLock(work); err != nil {
			a.fail(s, err)
			continue
		}
		a.fullRescan(work, s, "start")
	}

	for ctx.Err() == nil {
		if a.opts.Now().Sub(a.lastWritten) >= time.Second {
			a.writeStatus()
		}
		wait := min(a.nextWake(), a.lockCheckIn())
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-a.watcher.Changed():
		case <-a.rescan:
			for _, s := range a.sources {
				s.nextRescan, s.rescanWhy = time.Time{}, "requested"
			}
		case <-timer.C:
		}
		timer.Stop()
		if ctx.Err() != nil {
			break
		}
		a.runDue(work)
		if a.lockCheckIn() == 0 {
			if err := a.ensureLock(work); err != nil && ctx.Err() == nil {
				a.log.Debug("idle lock check failed; the next snapshot checks again", "err", err)
			}
		}
	}
	a.setStatus(func() { a.status.Stopped = true })
	a.writeStatus()
	a.log.Info("agent stopped")
	return nil
}

// runDue runs the rescans and snapshots whose time has come, one at a time.
func (a *Agent) runDue(ctx context.Context) {
	for _, j := range a.jobs {
		if !a.opts.Now().Before(j.next) && ctx.Err() == nil {
			a.runJob(ctx, j)
		}
	}
	for _, s := range a.sources {
		now := a.opts.Now()
		if now.Before(s.retryAt) || ctx.Err() != nil {
			continue
		}
		if now.Before(s.nextRescan) && !a.incrementalDue(s, now) {
			continue
		}
		// Before each snapshot: give way to a prune. Giving way may
		// schedule a rescan (the parent snapshot was removed).
		if err := a.ensureLock(ctx); err != nil {
			if ctx.Err() == nil {
				a.fail(s, err)
			}
			continue
		}
		if !a.opts.Now().Before(s.nextRescan) {
			why := "scheduled"
			if s.rescanWhy != "" {
				why, s.rescanWhy = s.rescanWhy, ""
			}
			a.fullRescan(ctx, s, why)
			continue
		}
		a.incremental(ctx, s)
	}
}

// incrementalDue applies the debounce: a quiet period after the latest
// change, or the max delay after the first.
func (a *Agent) incrementalDue(s *source, now time.Time) bool {
	if s.root == nil || a.watcher.Limited(s.root) != nil {
		return false
	}
	first, last, _, empty := a.watcher.Pending(s.root)
	if empty {
		return false
	}
	return now.Sub(last) >= a.opts.QuietPeriod || now.Sub(first) >= a.opts.MaxDelay
}

// nextWake is how long to sleep before something may be due.
func (a *Agent) nextWake() time.Duration {
	now := a.opts.Now()
	next := now.Add(time.Hour)
	for _, s := range a.sources {
		at := s.nextRescan
		if s.root != nil && a.watcher.Limited(s.root) == nil {
			if first, last, _, empty := a.watcher.Pending(s.root); !empty {
				due := last.Add(a.opts.QuietPeriod)
				if d := first.Add(a.opts.MaxDelay); d.Before(due) {
					due = d
				}
				if due.Before(at) {
					at = due
				}
			}
		}
		if at.Before(s.retryAt) {
			at = s.retryAt
		}
		if at.Before(next) {
			next = at
		}
	}
	for _, j := range a.jobs {
		if j.next.Before(next) {
			next = j.next
		}
	}
	if d := next.Sub(now); d > 0 {
		return d
	}
	return 0
}

// incremental saves a snapshot that reads only the directories the watcher
// reported and takes everything else from the previous snapshot.
func (a *Agent) incremental(ctx context.Context, s *source) {
	set := a.watcher.Take(s.root)
	if s.parent == nil {
		set.Everything(a.opts.Now())
	}
	res, err := a.backup(ctx, s, set, nil)
	if err != nil {
		a.watcher.Return(s.root, set)
		a.fail(s, err)
		return
	}
	a.done(s, res, "incremental")
}

// fullRescan reads the whole tree and, for a scheduled rescan, counts the
// differences the watcher had not reported.
func (a *Agent) fullRescan(ctx context.Context, s *source, reason string) {
	var taken *watch.Set
	if s.root != nil {
		taken = a.watcher.Take(s.root)
	}
	// Only the changes the watcher did not report are kept: the first
	// rescan finds every entry new, which is a change per file. taken is
	// no longer the watcher's, so reading it from several goroutines is
	// safe.
	checkMissed := taken != nil && reason != "start"
	var mu sync.Mutex
	var changes int
	var unseen []backup.Change
	res, err := a.backup(ctx, s, nil, func(c backup.Change) {
		covered := !checkMissed || taken.Covers(c.Path)
		mu.Lock()
		changes++
		if !covered {
			unseen = append(unseen, c)
		}
		mu.Unlock()
	})
	if err != nil {
		if taken != nil {
			a.watcher.Return(s.root, taken)
		}
		a.fail(s, err)
		return
	}
	now := a.opts.Now()
	s.nextRescan = now.Add(a.opts.RescanEvery)
	missed := 0
	if s.root != nil {
		a.watcher.Rewatch(s.root)
		if checkMissed && a.watcher.Limited(s.root) == nil {
			missed = a.countMissed(s, unseen)
		}
	}
	a.setStatus(func() {
		s.st.LastRescan = &RescanStatus{Time: now, Reason: reason, Changes: changes, Missed: missed}
		s.st.MissedTotal += missed
		s.st.NextRescan = s.nextRescan
	})
	a.done(s, res, "rescan", "reason", reason, "changes", changes, "missed_by_watcher", missed)
}

// countMissed counts the changes a rescan found that the watcher did not
// report before the rescan (unseen) nor while it ran (the events still
// arriving are given a moment to be handled).
func (a *Agent) countMissed(s *source, unseen []backup.Change) int {
	if len(unseen) == 0 {
		return 0
	}
	time.Sleep(time.Second) // events of changes made during the rescan
	missed := 0
	for _, c := range unseen {
		if !a.watcher.Peek(s.root, c.Path) {
			missed++
			a.log.Warn("the file watcher missed a change; the rescan stored it", "path", c.Path, "change", c.Kind.String(), "type", c.Type)
		}
	}
	return missed
}

// backup runs one backup of s under the agent's shared repository lock.
// changes nil reads the whole tree.
func (a *Agent) backup(ctx context.Context, s *source, changes *watch.Set, onChange func(backup.Change)) (*backup.Result, error) {
	opts := backup.Options{
		Paths: []string{s.Path}, Excludes: s.Excludes, OneFileSystem: s.OneFileSystem, Tags: s.Tags,
		Host: a.opts.Host, Parent: s.parent, Workers: a.opts.Parallelism,
		ProgramVersion: a.opts.ProgramVersion, Logger: a.log, Now: a.opts.Now,
		OnChange: onChange, KeepChanging: true, SkipUnchanged: true,
	}
	if changes != nil {
		opts.Changes = changes
	}
	rm := &removals{}
	opts.OnChange = func(c backup.Change) {
		if c.Kind == backup.Removed {
			rm.add(c)
		}
		if onChange != nil {
			onChange(c)
		}
	}
	kind := "incremental"
	if changes == nil {
		kind = "rescan"
	}
	start := time.Now()
	res, err := backup.Files(ctx, a.r, opts)
	if err == nil || ctx.Err() == nil {
		a.observeSnapshot(s.Path, kind, res, time.Since(start))
	}
	if err == nil && !res.Unchanged {
		a.checkDeletion(ctx, s, s.parent, res, rm, changes == nil)
	} else if err == nil && changes == nil && !s.filesKnown {
		s.files, s.filesKnown = int(res.Summary.TotalFilesProcessed), true
	}
	return res, err
}

// done records a finished backup, and logs it in one line with its figures
// (and extra, the caller's): "snapshot saved", or "backup done: nothing
// new" when the tree matched its parent.
func (a *Agent) done(s *source, res *backup.Result, kind string, extra ...any) {
	now := a.opts.Now()
	if s.failures > 0 {
		a.resolved(notify.BackupFailed, s.Path, "backups of %s work again.", s.Path)
	}
	s.failures, s.retryAt = 0, time.Time{}
	for _, p := range res.Deferred {
		if s.root != nil {
			a.watcher.MarkFile(s.root, p)
		}
	}
	sm := res.Summary
	figures := []any{"source", s.Path, "kind", kind,
		"files_new", sm.FilesNew, "files_changed", sm.FilesChanged, "files_examined", sm.TotalFilesProcessed,
		"bytes_read", res.BytesRead, "bytes_added", sm.DataAdded, "bytes_stored", sm.DataAddedPacked,
		"unreadable", len(res.Errors), "deferred", len(res.Deferred), "seconds", sm.BackupEnd.Sub(sm.BackupStart).Seconds()}
	figures = append(figures, extra...)
	if res.Unchanged {
		a.log.Info("backup done: nothing new", figures...)
	} else {
		s.parent = res.Snapshot
		a.log.Info("snapshot saved", append(figures, "snapshot", res.Snapshot.ID.Str())...)
	}
	for _, e := range res.Errors {
		a.log.Warn("could not read", "path", e.Path, "err", e.Err)
	}
	a.setStatus(func() {
		if s.st.Verified.IsZero() || s.st.LastError != "" {
			a.beatSoon()
		}
		s.st.Verified = now
		s.st.LastError, s.st.Failures = "", 0
		s.st.Deferred = res.Deferred
		if !res.Unchanged {
			ss := &SnapshotStatus{
				ID: res.Snapshot.ID.String(), Time: res.Snapshot.Time, Kind: kind,
				FilesNew: sm.FilesNew, FilesChanged: sm.FilesChanged, BytesAdded: sm.DataAdded,
				Seconds: sm.BackupEnd.Sub(sm.BackupStart).Seconds(),
			}
			for i, e := range res.Errors {
				if i == 20 {
					break
				}
				ss.Unreadable = append(ss.Unreadable, e.Error())
			}
			s.st.LastSnapshot = ss
		}
		a.refreshWatch(s)
	})
	a.writeStatus()
}

// fail records a failed backup and schedules a retry with backoff; the
// changes it would have saved stay pending.
func (a *Agent) fail(s *source, err error) {
	s.failures++
	backoff := 10 * time.Second << min(s.failures-1, 6) // 10s … ~10m
	s.retryAt = a.opts.Now().Add(backoff)
	a.log.Error("backup failed; changes stay pending and will be retried", "source", s.Path, "retry_in", backoff, "err", err)
	a.beatSoon()
	a.problem(notify.BackupFailed, s.Path, "the backup of %s failed: %v. Its changes stay pending and are retried in %s.", s.Path, err, backoff)
	a.setStatus(func() {
		s.st.LastError = err.Error()
		s.st.LastErrorTime = a.opts.Now()
		s.st.Failures = s.failures
		a.refreshWatch(s)
	})
	a.writeStatus()
}

// refreshWatch copies the watcher's view of s into its status; a.mu held.
func (a *Agent) refreshWatch(s *source) {
	if s.root == nil {
		s.st.Watching = false
		if !s.Watch {
			s.st.WatchProblem = "watching is off for this source: changes are saved by the scheduled rescans"
		}
		return
	}
	s.st.Watches = a.watcher.Watches(s.root)
	s.st.WatchEvents = a.watcher.Events(s.root)
	if err := a.watcher.Limited(s.root); err != nil {
		s.st.Watching, s.st.WatchProblem = false, err.Error()
	} else {
		s.st.Watching, s.st.WatchProblem = true, ""
	}
	first, _, dirs, empty := a.watcher.Pending(s.root)
	if empty {
		s.st.PendingSince, s.st.PendingDirs = time.Time{}, 0
	} else {
		s.st.PendingSince, s.st.PendingDirs = first, dirs
	}
}

func (a *Agent) setStatus(f func()) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f()
}

// writeStatus refreshes the pending counts and writes the status file.
func (a *Agent) writeStatus() {
	a.mu.Lock()
	for _, s := range a.sources {
		a.refreshWatch(s)
	}
	a.status.Updated = a.opts.Now()
	a.lastWritten = a.status.Updated
	st := a.status
	st.Sources = append([]SourceStatus(nil), a.status.Sources...)
	st.Jobs = append([]JobStatus(nil), a.status.Jobs...)
	a.mu.Unlock()
	err := WriteStatus(a.opts.StateDir, &st)
	a.mu.Lock()
	failing := a.statusFailing
	a.statusFailing = err != nil
	a.mu.Unlock()
	switch {
	case err != nil && errors.Is(err, syscall.ENOSPC):
		// Once per episode: the next status write is seconds away.
		if !failing {
			a.log.Error(fmt.Sprintf("disk full: the state directory %s has no space left; backups go on, but `escrow status` shows the last status written until space is freed there (or state_dir is moved)", a.opts.StateDir), "state_dir", a.opts.StateDir, "err", err)
		}
	case err != nil:
		a.log.Warn("cannot write the status file", "state_dir", a.opts.StateDir, "err", err)
	case failing:
		a.log.Info("the status file is written again", "state_dir", a.opts.StateDir)
	}
}

// Status returns a copy of the agent's current status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.status
	st.Sources = append([]SourceStatus(nil), a.status.Sources...)
	st.Jobs = append([]JobStatus(nil), a.status.Jobs...)
	return st
}

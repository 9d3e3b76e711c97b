package agent

import (
	"context"
	"time"

	"github.com/escrow-backup/escrow/notify"
)

// Job is work the agent runs on a schedule besides watching files, such as
// a database dump. Jobs run one at a time, between snapshots.
type Job struct {
	// Name identifies the job in logs and status ("mysql", "sqlite-app").
	Name  string
	Every time.Duration
	// FreshWithin is the job's target freshness (default: twice Every).
	FreshWithin time.Duration
	// Run does the work once. An error means nothing good was recorded:
	// the job is retried with backoff, never later than its next turn.
	Run func(ctx context.Context) (JobResult, error)
}

// JobResult is what one successful run of a job produced.
type JobResult struct {
	Snapshots []string // IDs of the snapshots saved
	Bytes     uint64   // bytes read
}

// JobStatus reports on one Job.
type JobStatus struct {
	Name          string    `json:"name"`
	Every         string    `json:"every"`
	FreshWithin   string    `json:"fresh_within,omitempty"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastSnapshots []string  `json:"last_snapshots,omitempty"`
	LastBytes     uint64    `json:"last_bytes"`
	NextRun       time.Time `json:"next_run,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	Failures      int       `json:"consecutive_failures"`
}

// job is the agent's state for one Job.
type job struct {
	Job
	next     time.Time
	failures int
	// prevBytes and prevSnaps are the previous good run's dump size and
	// snapshots, to notice a dump that shrank sharply.
	prevBytes uint64
	prevSnaps []string
	st        *JobStatus // in Agent.status, guarded by Agent.mu
}

// runJob runs j once and schedules its next run: its period after a
// success; after a failure, a backoff (1 min, doubling) capped by the
// period, so a dump that fails is retried well before its next turn.
func (a *Agent) runJob(ctx context.Context, j *job) {
	a.log.Info("job started", "job", j.Name)
	start := time.Now()
	var res JobResult
	err := a.ensureLock(ctx) // a job saves snapshots: give way to a prune first
	if err == nil {
		res, err = j.Run(ctx)
	}
	took := time.Since(start)
	now := a.opts.Now()
	if err != nil {
		if ctx.Err() != nil {
			return // stopping: not a failure of the job
		}
		a.observeJob(j.Name, 0, took, true)
		j.failures++
		backoff := min(time.Minute<<min(j.failures-1, 10), j.Every)
		j.next = now.Add(backoff)
		a.log.Error("job failed; nothing was recorded, retrying", "job", j.Name, "retry_in", backoff, "err", err)
		a.beatSoon()
		a.problem(notify.DumpFailed, j.Name, "%s failed and nothing was recorded: %v. It is retried in %s.", j.Name, err, backoff)
		a.setStatus(func() {
			j.st.LastError, j.st.LastErrorTime, j.st.Failures, j.st.NextRun = err.Error(), now, j.failures, j.next
		})
		a.writeStatus()
		return
	}
	if j.failures > 0 {
		a.resolved(notify.DumpFailed, j.Name, "%s works again.", j.Name)
	}
	j.failures = 0
	j.next = now.Add(j.Every)
	if j.prevBytes > 0 {
		a.checkDump(ctx, j, j.prevBytes, j.prevSnaps, res)
	}
	j.prevBytes, j.prevSnaps = res.Bytes, res.Snapshots
	a.observeJob(j.Name, res.Bytes, took, false)
	a.log.Info("job done", "job", j.Name, "snapshots", res.Snapshots, "bytes", res.Bytes, "seconds", took.Seconds())
	a.setStatus(func() {
		if j.st.LastSuccess.IsZero() || j.st.LastError != "" {
			a.beatSoon()
		}
		j.st.LastSuccess, j.st.LastSnapshots, j.st.LastBytes = now, res.Snapshots, res.Bytes
		j.st.LastError, j.st.Failures, j.st.NextRun = "", 0, j.next
	})
	a.writeStatus()
}

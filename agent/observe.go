package agent

import (
	"time"

	"github.com/escrow-backup/escrow/backup"
)

// Observer is told the figures of every run, for metrics. Its methods are
// called from the agent's loop and must not block.
type Observer interface {
	// Snapshot reports a backup of source that succeeded (kind
	// "incremental" or "rescan"; saved is false when nothing had changed)
	// or failed (res nil).
	Snapshot(source, kind string, res *backup.Result, d time.Duration)
	// Job reports one run of a job: its dump size when it succeeded, or
	// failed true.
	Job(name string, bytes uint64, d time.Duration, failed bool)
}

func (a *Agent) observeSnapshot(source, kind string, res *backup.Result, d time.Duration) {
	if a.opts.Observer != nil {
		a.opts.Observer.Snapshot(source, kind, res, d)
	}
}

func (a *Agent) observeJob(name string, bytes uint64, d time.Duration, failed bool) {
	if a.opts.Observer != nil {
		a.opts.Observer.Job(name, bytes, d, failed)
	}
}

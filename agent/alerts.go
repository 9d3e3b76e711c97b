package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/escrow-backup/escrow/agent/heartbeat"
	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/notify"
	"github.com/escrow-backup/escrow/repo"
)

// Alerter receives problems and their ends; *notify.Notifier is one.
type Alerter interface {
	Problem(kind notify.Kind, subject, message string)
	Resolved(kind notify.Kind, subject, message string)
}

// MassDeletion tunes what counts as a suspected mass deletion. Zero
// fields take the defaults.
type MassDeletion struct {
	// Share of a source's files deleted in one backup (default 0.5), and
	// at least MinFiles of them (default 20).
	Share    float64
	MinFiles int
	// DumpShare: a database dump that shrank by this share of the
	// previous one (default 0.5), when the previous was at least
	// MinDumpBytes (default 64 KiB).
	DumpShare    float64
	MinDumpBytes uint64
}

func (m *MassDeletion) fill() {
	if m.Share <= 0 || m.Share > 1 {
		m.Share = 0.5
	}
	if m.MinFiles <= 0 {
		m.MinFiles = 20
	}
	if m.DumpShare <= 0 || m.DumpShare > 1 {
		m.DumpShare = 0.5
	}
	if m.MinDumpBytes == 0 {
		m.MinDumpBytes = 64 << 10
	}
}

func (a *Agent) problem(kind notify.Kind, subject, format string, args ...any) {
	if a.opts.Alerts != nil {
		a.opts.Alerts.Problem(kind, subject, fmt.Sprintf(format, args...))
	}
}

func (a *Agent) resolved(kind notify.Kind, subject, format string, args ...any) {
	if a.opts.Alerts != nil {
		a.opts.Alerts.Resolved(kind, subject, fmt.Sprintf(format, args...))
	}
}

// removals counts what a backup found deleted since its parent snapshot.
type removals struct {
	mu    sync.Mutex
	files int
	dirs  []string
}

func (rm *removals) add(c backup.Change) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	switch c.Type {
	case repo.NodeFile:
		rm.files++
	case repo.NodeDir:
		rm.dirs = append(rm.dirs, c.Path)
	}
}

// checkDeletion compares the files a backup of s found deleted with the
// files its parent held. When a large share is gone at once, as an
// insider's wipe or ransomware looks, the parent (the last snapshot before
// it) is tagged pre-deletion and an alert is sent. It runs under the
// backup's repository lock.
func (a *Agent) checkDeletion(ctx context.Context, s *source, parent *repo.Snapshot, res *backup.Result, rm *removals, full bool) {
	before, known := s.files, s.filesKnown
	deleted := rm.files
	if known && before > 0 && parent != nil {
		for _, d := range rm.dirs {
			n, err := a.r.FindNode(ctx, parent, d)
			if err != nil || n.Subtree == nil {
				continue
			}
			c, err := a.r.CountFiles(ctx, *n.Subtree)
			if err != nil {
				a.log.Warn("cannot count the files of a deleted directory", "path", d, "err", err)
				continue
			}
			deleted += c
		}
	}
	switch {
	case full:
		s.files, s.filesKnown = int(res.Summary.TotalFilesProcessed), true
	case known:
		s.files = max(0, before+int(res.Summary.FilesNew)-deleted)
	}
	md := a.opts.MassDeletion
	if !known || before == 0 || parent == nil || deleted < md.MinFiles || float64(deleted) < md.Share*float64(before) {
		return
	}
	share := 100 * float64(deleted) / float64(before)
	tagged, err := a.r.AddTag(ctx, parent, repo.TagPreDeletion)
	if err != nil {
		a.log.Error("suspected mass deletion; tagging the snapshot before it failed", "source", s.Path, "deleted", deleted, "of", before, "err", err)
		a.problem(notify.MassDeletion, s.Path, "%d of the %d files of %s (%.0f%%) were deleted at once (snapshot %s). Tagging the snapshot before it, %s, as %s failed: %v. Check the server now; restore with: escrow restore %s",
			deleted, before, s.Path, share, res.Snapshot.ID.Str(), parent.ID.Str(), repo.TagPreDeletion, err, parent.ID.Str())
		return
	}
	a.log.Warn("suspected mass deletion: the snapshot before it is tagged pre-deletion", "source", s.Path,
		"deleted", deleted, "of", before, "snapshot", res.Snapshot.ID.Str(), "pre_deletion", tagged.ID.Str())
	a.problem(notify.MassDeletion, s.Path, "%d of the %d files of %s (%.0f%%) were deleted at once (snapshot %s). If that was not intended, check the server now. The snapshot before it is kept as %s, tagged %s; restore it with: escrow restore %s --target DIR",
		deleted, before, s.Path, share, res.Snapshot.ID.Str(), tagged.ID.Str(), repo.TagPreDeletion, tagged.ID.Str())
}

// checkDump compares a database dump's size with the previous one; a dump
// that shrank sharply tags the previous dump's snapshots pre-deletion.
func (a *Agent) checkDump(ctx context.Context, j *job, prevBytes uint64, prevSnaps []string, res JobResult) {
	md := a.opts.MassDeletion
	if prevBytes < md.MinDumpBytes || float64(res.Bytes) > (1-md.DumpShare)*float64(prevBytes) {
		return
	}
	lock, err := a.r.Lock(ctx, false)
	if err != nil {
		a.log.Error("suspected mass deletion in a database; cannot lock the repository to tag the dump before it", "job", j.Name, "err", err)
		return
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
	var tagged []string
	for _, id := range prevSnaps {
		pid, err := repo.ParseID(id)
		if err != nil {
			continue
		}
		sn, err := a.r.LoadSnapshot(ctx, pid)
		if err == nil {
			sn, err = a.r.AddTag(ctx, sn, repo.TagPreDeletion)
		}
		if err != nil {
			a.log.Error("cannot tag the dump before a suspected mass deletion", "job", j.Name, "snapshot", id, "err", err)
			continue
		}
		tagged = append(tagged, sn.ID.Str())
	}
	a.log.Warn("suspected mass deletion: the database dump shrank sharply; the dump before it is tagged pre-deletion",
		"job", j.Name, "bytes", res.Bytes, "previous_bytes", prevBytes, "pre_deletion", tagged)
	a.problem(notify.MassDeletion, j.Name, "the dump of %s shrank from %d to %d bytes (%.0f%% less) since the previous one. If that was not intended, check the database now. The previous dump is kept as %v, tagged %s; restore it with escrow restore-db.",
		j.Name, prevBytes, res.Bytes, 100-100*float64(res.Bytes)/float64(prevBytes), tagged, repo.TagPreDeletion)
}

// checkHealth sends the problems that are states rather than events:
// sources and databases older than their target, a worse escrow verdict,
// an unconfirmed recovery kit; and their recoveries.
func (a *Agent) checkHealth(v *heartbeat.Verdict) {
	if a.opts.Alerts == nil {
		return
	}
	now := a.opts.Now()
	st := a.Status()
	staleness := func(name string, last time.Time, fresh time.Duration) {
		switch {
		case last.IsZero() && now.Sub(st.Started) > fresh:
			a.problem(notify.Stale, name, "%s has had no good backup in the %s since the agent started, more than its target %s (fresh_within). See escrow status.",
				name, now.Sub(st.Started).Round(time.Minute), fresh)
		case !last.IsZero() && now.Sub(last) > fresh:
			a.problem(notify.Stale, name, "the last good backup of %s is %s old, more than its target %s (fresh_within). See escrow status.",
				name, now.Sub(last).Round(time.Minute), fresh)
		case !last.IsZero():
			a.resolved(notify.Stale, name, "%s is backed up again (last good backup %s).", name, last.Format(time.DateTime))
		}
	}
	for i, s := range st.Sources {
		staleness(s.Path, s.Verified, a.sources[i].FreshWithin)
	}
	for i, j := range st.Jobs {
		staleness(j.Name, j.LastSuccess, a.jobs[i].FreshWithin)
	}
	if v != nil {
		if a.tamperProof != nil && *a.tamperProof && !v.TamperProof {
			a.escrowWorse = true
		}
		if v.TamperProof && a.escrowWorse {
			a.escrowWorse = false
			a.resolved(notify.EscrowWorse, "escrow", "escrow doctor finds the escrow tamper-proof again: %s.", v.Verdict)
		}
		tp := v.TamperProof
		a.tamperProof = &tp
	}
	if a.escrowWorse && v != nil {
		a.problem(notify.EscrowWorse, "escrow", "escrow doctor no longer finds the escrow tamper-proof: %s (%s). Whoever controls this server may now be able to delete the backups; run escrow doctor and fix what it reports.",
			v.Verdict, v.Time.Format(time.DateTime))
	}
	if a.opts.KitConfirmed != nil {
		if a.opts.KitConfirmed() {
			a.resolved(notify.KitUnconfirmed, "recovery kit", "the recovery kit is confirmed.")
		} else {
			a.problem(notify.KitUnconfirmed, "recovery kit", "the recovery kit has not been confirmed: if this server is lost, so are its backups, since the password exists only here. Run escrow kit, store it off this server, then escrow kit confirm.")
		}
	}
}

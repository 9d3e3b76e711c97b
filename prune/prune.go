// Package prune removes data no snapshot needs any more, restic-style and
// in restic's format, so that restic's own check and prune agree with it.
//
// Invariants, in the order Run keeps them:
//   - Nothing is deleted on a listing that shrank since the last run
//     without escrow removing what vanished (see the guard in state.go),
//     unless the owner forces it.
//   - Everything used is first stored again: used blobs of packs to repack
//     go to new packs, indexed by the writer, before anything is deleted.
//   - New index files listing every pack that stays are written before any
//     old index file is deleted, and every deletable old index file is
//     deleted before any pack. So after an interruption at any point every
//     pack an index lists is stored, and a re-run finishes the work.
//   - A pack no index lists is deleted only when older than the grace
//     period: a backup in progress uploads packs before it indexes them.
//   - Nothing under Object Lock retention is deleted or even tried: an
//     unused pack that is retained stays stored and indexed, and an old
//     index file that is retained stays, and so do the packs it lists.
package prune

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// DefaultGrace is how old a pack no index lists must be before prune
// deletes it; a backup indexes its packs within minutes.
const DefaultGrace = 2 * time.Hour

// DefaultMaxUnused is restic's default: leave up to 5% unused data rather
// than repack for every small gain.
const DefaultMaxUnused = 5.0

// Options tune Run.
type Options struct {
	// MaxUnused is how much unused data may stay in partly used packs, in
	// percent of the used data; 0 repacks every partly used pack, 100 or
	// more none.
	MaxUnused float64
	// RepackSmall also merges packs under 80% of the target pack size.
	RepackSmall bool
	// Grace protects packs no index lists yet that are younger than it.
	Grace time.Duration
	// DryRun plans and reports without changing anything.
	DryRun bool
	// StateDir holds the guard's record of the last listing ("" turns the
	// guard off); Force acts even when the listing shrank.
	StateDir string
	Force    bool
	// Retention reads Object Lock retention; nil finds it on the backend.
	Retention Retention
	Logger    *slog.Logger
	Now       func() time.Time
	// Workers load trees and delete objects in parallel.
	Workers int
	// LockWait is how long to wait for backups in progress to release
	// their locks (default DefaultLockWait).
	LockWait time.Duration
}

func (o *Options) fill(r *repo.Repository) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LockWait <= 0 {
		o.LockWait = DefaultLockWait
	}
	if o.Workers <= 0 {
		o.Workers = min(2*runtime.GOMAXPROCS(0), 8)
	}
	if o.Retention == nil {
		o.Retention = RetentionOf(r.Backend())
	}
}

// Count is a number of objects and their bytes.
type Count struct {
	N     int   `json:"count"`
	Bytes int64 `json:"bytes"`
}

func (c *Count) add(n int64) { c.N++; c.Bytes += n }

// Result is the plan and, unless a dry run, what was done.
type Result struct {
	DryRun    bool `json:"dry_run"`
	Snapshots int  `json:"snapshots"`
	// Before is every stored pack; After what stays.
	Before Count `json:"before"`
	After  Count `json:"after"`
	Used   Count `json:"used_blobs"`
	Keep   Count `json:"keep"`
	Remove Count `json:"remove"`
	Repack Count `json:"repack"`
	// Repacked is the used data copied out of repacked packs.
	Repacked Count `json:"repacked_blobs"`
	// Orphans are packs no index lists, older than the grace period.
	Orphans Count `json:"orphans"`
	// Young are packs no index lists, younger than the grace period.
	Young Count `json:"young"`
	// Protected packs would go but are under retention until
	// ProtectedUntil (the latest such date).
	Protected      Count     `json:"protected"`
	ProtectedUntil time.Time `json:"protected_until,omitzero"`
	// Index files: old ones to replace, those retained, new ones written.
	IndexOld      int `json:"index_old"`
	IndexRetained int `json:"index_retained"`
	IndexNew      int `json:"index_new"`
	// FirstRun: no earlier listing was recorded for the guard.
	FirstRun bool `json:"first_run"`
}

// Run prunes r. The repository must be opened with the owner's credentials
// (deletes are needed) and its index not loaded yet.
func Run(ctx context.Context, r *repo.Repository, opts Options) (*Result, error) {
	opts.fill(r)
	held, err := Lock(ctx, r, !opts.DryRun, opts.LockWait, opts.Logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := held.Unlock(ctx); err != nil {
			opts.Logger.Warn("could not release the repository lock", "err", err)
		}
	}()
	p := &pruner{r: r, o: opts, res: &Result{DryRun: opts.DryRun}}
	if err := p.load(ctx); err != nil {
		return nil, err
	}
	if err := p.guard(); err != nil {
		return nil, err
	}
	if err := p.plan(ctx); err != nil {
		return nil, err
	}
	if opts.DryRun {
		return p.res, nil
	}
	if err := p.execute(ctx); err != nil {
		return p.res, err
	}
	return p.res, nil
}

type pruner struct {
	r   *repo.Repository
	o   Options
	res *Result

	snaps    []*repo.Snapshot
	index    []*repo.IndexFile
	packs    map[repo.ID]*pack
	order    []*pack // indexed packs, in a stable order
	cur      *listing
	prev     *listing
	oldIndex []repo.ID // deletable old index files
}

// load lists and reads snapshots, then the index, then the packs (read
// ordering: a snapshot is never seen without the index it needs). Unlike
// a backup or restore, prune refuses to go on past any damaged file: a
// snapshot it cannot read would have its data deleted.
func (p *pruner) load(ctx context.Context) error {
	ids, err := p.r.List(ctx, remote.SnapshotFile)
	if err != nil {
		return err
	}
	p.cur = &listing{Time: p.o.Now()}
	p.snaps = make([]*repo.Snapshot, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.o.Workers)
	for i, id := range ids {
		p.cur.Snapshots = append(p.cur.Snapshots, id.String())
		g.Go(func() error {
			sn, err := p.r.LoadSnapshot(gctx, id)
			if err != nil {
				return fmt.Errorf("snapshot %s cannot be read: %w (prune would delete the data it references; run `escrow check`, and remove the file with `escrow forget %s` if it is beyond repair)", id.Str(), err, id.Str())
			}
			p.snaps[i] = sn
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	p.res.Snapshots = len(p.snaps)

	ids, err = p.r.List(ctx, remote.IndexFile)
	if err != nil {
		return err
	}
	p.index = make([]*repo.IndexFile, len(ids))
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(p.o.Workers)
	for i, id := range ids {
		p.cur.Index = append(p.cur.Index, id.String())
		g.Go(func() error {
			f, err := p.r.LoadIndexFile(gctx, id)
			if err != nil {
				return fmt.Errorf("index file %s cannot be read: %w (prune does not run on a damaged index; run `escrow check`)", id.Str(), err)
			}
			p.index[i] = f
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}

	p.packs = map[repo.ID]*pack{}
	err = p.r.Backend().List(ctx, remote.PackFile, func(fi remote.FileInfo) error {
		id, err := repo.ParseID(fi.Name)
		if err != nil {
			p.o.Logger.Warn("ignoring a pack with an invalid name", "name", fi.Name)
			return nil
		}
		p.packs[id] = &pack{id: id, size: fi.Size, modTime: fi.ModTime}
		p.cur.Packs = append(p.cur.Packs, packKey(id))
		p.res.Before.add(fi.Size)
		return nil
	})
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	return nil
}

// guard compares the listing with the one recorded after the last run.
func (p *pruner) guard() error {
	if p.o.StateDir == "" {
		return nil
	}
	prev, err := loadListing(StatePath(p.o.StateDir, p.r.Config().ID))
	if err != nil {
		return err
	}
	if prev == nil {
		p.res.FirstRun = true
		return nil
	}
	p.prev = prev
	if err := prev.compare(p.cur); err != nil {
		if !p.o.Force {
			return err
		}
		p.o.Logger.Warn("going on although the listing shrank (--force)", "err", err)
	}
	return nil
}

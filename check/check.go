// Package check verifies a repository: that its index loads, that every
// indexed pack is stored with the size the index gives, that every snapshot
// loads and every tree it reaches decodes and references only indexed blobs,
// and, when asked to read data, that each pack's bytes still hash to its name
// and every blob in it decrypts and matches its ID.
//
// Damage is reported, never repaired: check only reads. For each problem it
// names the object, says what to do, and lists the files and snapshots that
// need the damaged data, so an operator knows what cannot be restored.
//
// The caller holds a shared lock while Run works: a concurrent prune would
// make packs look missing. A concurrent backup is harmless; its packs show
// as orphans until its index is written.
package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

// Options select what Run verifies.
type Options struct {
	// ReadData reads every pack. Setting a subset implies it.
	ReadData bool
	// SubsetFraction in (0,1] reads that share of the packs, chosen at
	// random, at least one when any exist.
	SubsetFraction float64
	// SubsetPart of SubsetParts (1-based) reads the packs whose ID falls in
	// that part, so that running parts 1..SubsetParts reads every pack once.
	SubsetPart, SubsetParts int
	// Workers load trees and read packs in parallel; default twice the
	// cores, at most 8. Each pack reader holds one whole pack in memory.
	Workers int
	Logger  *slog.Logger
	// Progress, when set, is called as each stage advances; total is 0 while
	// unknown. Calls never overlap.
	Progress func(stage string, done, total int)
	// ReadProgress, when set, is called as each pack read for ReadData has
	// been verified, with the bytes; calls never overlap.
	ReadProgress func(ReadProgress)
}

// ReadProgress is how far reading the data has come; the bytes are the
// packs' stored sizes.
type ReadProgress struct {
	PacksDone, PacksTotal int
	BytesDone, BytesTotal uint64
}

// Stages passed to Options.Progress.
const (
	StageSnapshots = "snapshots"
	StagePacks     = "packs"
	StageTrees     = "trees"
	StageReadData  = "read-data"
	StageAffected  = "affected"
)

func (o *Options) fill() error {
	switch {
	case !(o.SubsetFraction >= 0 && o.SubsetFraction <= 1): // also rejects NaN
		return fmt.Errorf("read-data subset %v: want a fraction in (0,1]", o.SubsetFraction)
	case o.SubsetParts < 0 || (o.SubsetParts > 0 && (o.SubsetPart < 1 || o.SubsetPart > o.SubsetParts)):
		return fmt.Errorf("read-data subset %d/%d: want N/M with 1 <= N <= M", o.SubsetPart, o.SubsetParts)
	case o.SubsetParts == 0 && o.SubsetPart != 0:
		return fmt.Errorf("read-data subset part %d given without a number of parts", o.SubsetPart)
	case o.SubsetFraction > 0 && o.SubsetParts > 0:
		return errors.New("read-data subset: give a fraction or a part, not both")
	}
	if o.SubsetFraction > 0 || o.SubsetParts > 0 {
		o.ReadData = true
	}
	if o.Workers <= 0 {
		o.Workers = min(2*runtime.GOMAXPROCS(0), 8)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// SetSubset sets the subset from the forms --read-data-subset takes: "N%"
// (that share of the packs, chosen at random) or "N/M" (part N of M).
func (o *Options) SetSubset(s string) error {
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil || !(f > 0 && f <= 100) {
			return fmt.Errorf("read-data subset %q: want a percentage above 0 and at most 100", s)
		}
		o.SubsetFraction, o.SubsetPart, o.SubsetParts = f/100, 0, 0
		return nil
	}
	if a, b, ok := strings.Cut(s, "/"); ok {
		n, err1 := strconv.Atoi(a)
		m, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || n < 1 || n > m {
			return fmt.Errorf("read-data subset %q: want N/M with 1 <= N <= M", s)
		}
		o.SubsetFraction, o.SubsetPart, o.SubsetParts = 0, n, m
		return nil
	}
	return fmt.Errorf("read-data subset %q: give a percentage such as 10%% or a part such as 1/5", s)
}

// Problem kinds.
const (
	KindIndex       = "index"        // an index file cannot be loaded
	KindSnapshot    = "snapshot"     // a snapshot file cannot be loaded
	KindMissingPack = "missing-pack" // an indexed pack is not in storage
	KindPackSize    = "pack-size"    // a pack's size differs from the index's
	KindPackRead    = "pack-read"    // a pack could not be read (storage error)
	KindPackHash    = "pack-hash"    // a pack's content does not hash to its name
	KindPackHeader  = "pack-header"  // an intact pack's header disagrees with the index
	KindBlob        = "blob"         // a blob in an intact pack fails to verify
	KindMissingBlob = "missing-blob" // a tree references a blob no index lists
	KindTree        = "tree"         // an indexed tree cannot be loaded or decoded
	// KindOverwritten: an object's current version was written over; an
	// older version is sound and was read instead.
	KindOverwritten = "overwritten"
)

// MaxAffected bounds Problem.Affected; the rest are only counted.
const MaxAffected = 100

// Problem is one piece of damage.
type Problem struct {
	Kind string
	Pack repo.ID         // zero if not about one pack
	Blob repo.BlobHandle // zero if not about one blob
	// Err names the object and what is wrong with it; it matches
	// repo.ErrCorrupt or repo.ErrMissing where those apply.
	Err error
	// Fix says what the operator can do.
	Fix string
	// Affected lists the files and folders (Path within the snapshot,
	// "/" for a whole snapshot) whose content needs the damaged data, at
	// most MaxAffected of them; MoreAffected counts the rest.
	Affected     []Affected
	MoreAffected int
}

func (p Problem) String() string { return p.Err.Error() + ": " + p.Fix }

// Affected is a path in a snapshot that cannot be restored intact.
type Affected struct {
	Snapshot repo.ID
	Path     string
}

// Report is what Run found.
type Report struct {
	Snapshots int // snapshot files listed
	Trees     int // distinct trees checked
	Packs     int // packs in the index
	PacksRead int
	Blobs     int // blobs in the index
	// Orphans are stored packs no index lists: left by an interrupted or
	// running backup; harmless, and for prune to remove.
	Orphans  []repo.ID
	Problems []Problem
}

// OK reports whether no damage was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// finding is a problem together with the blobs whose users it affects.
type finding struct {
	Problem
	blobs []repo.BlobHandle
}

type checker struct {
	r    *repo.Repository
	opts Options
	log  *slog.Logger
	rep  *Report

	findings []finding
	// indexIncomplete is set when an index file failed to load: blobs may
	// then be missing from the master index only because of that, so
	// missing-blob is not reported, only counted in unchecked.
	indexIncomplete bool
	unchecked       int

	progressMu sync.Mutex
}

// Run checks r and loads its index. It returns an error only when it cannot
// check at all (storage cannot be listed, the context ends); damage is in
// the report.
func Run(ctx context.Context, r *repo.Repository, opts Options) (*Report, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	c := &checker{r: r, opts: opts, log: opts.Logger, rep: &Report{}}

	// Snapshots are listed before the index is loaded (the read ordering
	// rule), so a backup finishing meanwhile cannot show a snapshot whose
	// index we did not load.
	snapIDs, err := r.List(ctx, remote.SnapshotFile)
	if err != nil {
		return nil, err
	}
	c.rep.Snapshots = len(snapIDs)
	if err := c.loadIndex(ctx); err != nil {
		return nil, err
	}
	c.rep.Blobs = r.Index().Len()
	byPack := packBlobs(r.Index())

	packs, err := c.listPacks(ctx)
	if err != nil {
		return nil, err
	}
	snaps, err := c.loadSnapshots(ctx, snapIDs)
	if err != nil {
		return nil, err
	}
	if err := c.walkTrees(ctx, snaps); err != nil {
		return nil, err
	}
	var reads map[repo.ID]*readResult
	if c.opts.ReadData {
		if reads, err = c.readData(ctx, c.selectPacks(packs), packs, byPack); err != nil {
			return nil, err
		}
	}
	c.packFindings(packs, reads, byPack)
	if c.unchecked > 0 {
		// The first finding is the index problem that made them uncheckable.
		c.findings[0].Err = fmt.Errorf("%w (%d blobs the snapshots need are in no index that loaded: the files and folders listed need them, and restore cannot find them until the index is whole)", c.findings[0].Err, c.unchecked)
	}
	if err := c.fillAffected(ctx, snaps); err != nil {
		return nil, err
	}
	for _, f := range c.findings {
		c.rep.Problems = append(c.rep.Problems, f.Problem)
	}
	for _, o := range r.Overwritten() {
		c.rep.Problems = append(c.rep.Problems, Problem{Kind: KindOverwritten,
			Err: fmt.Errorf("%s was written over at %s: %w: its current version does not match its name; the version of %s is sound and was read instead",
				o.Object, o.BadTime.UTC().Format(time.RFC3339), repo.ErrCorrupt, o.UsedTime.UTC().Format(time.RFC3339)),
			Fix: fmt.Sprintf("someone with write access to the bucket replaced it; once the host is clean, run escrow recover --as-of TIME (owner credentials) with a TIME after %s and before the attack to make the bucket whole for every tool, restic included (see docs/as-of.md)",
				o.UsedTime.UTC().Format(time.RFC3339))})
	}
	return c.rep, nil
}

func (c *checker) progress(stage string, done, total int) {
	if c.opts.Progress == nil {
		return
	}
	c.progressMu.Lock()
	defer c.progressMu.Unlock()
	c.opts.Progress(stage, done, total)
}

func (c *checker) add(f finding) { c.findings = append(c.findings, f) }

// loadIndex loads the master index. repo.LoadIndex stops at the first bad
// file, so on failure each file is loaded again on its own to name the bad
// ones; the rest of the check then runs on what did load.
func (c *checker) loadIndex(ctx context.Context) error {
	ids, err := c.r.List(ctx, remote.IndexFile)
	if err != nil {
		return err
	}
	lerr := c.r.LoadIndex(ctx)
	if lerr == nil {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.indexIncomplete = true
	const fix = "the blobs and packs it lists look missing to backup, restore and this check: the files and folders listed cannot be restored until it loads, " +
		"and missing blobs and orphan packs were not reported separately; if the error persists the index must be rebuilt from the packs"
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	named := 0
	for _, id := range ids {
		// Only the sealed layer is checked here: name, MAC, compression, JSON syntax.
		var doc any
		if err := c.r.LoadJSON(ctx, remote.IndexFile, id, &doc); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			named++
			c.add(finding{Problem: Problem{Kind: KindIndex,
				Err: fmt.Errorf("index file %s cannot be loaded: %w", id.Str(), err), Fix: fix}})
		}
	}
	if named == 0 {
		c.add(finding{Problem: Problem{Kind: KindIndex,
			Err: fmt.Errorf("index cannot be loaded: %w", lerr), Fix: fix}})
	}
	return nil
}

// loadSnapshots loads every snapshot, reporting those that fail. The result
// is oldest first, without the failed ones.
func (c *checker) loadSnapshots(ctx context.Context, ids []repo.ID) ([]*repo.Snapshot, error) {
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	snaps := make([]*repo.Snapshot, len(ids))
	errs := make([]error, len(ids))
	var done int
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(c.opts.Workers)
	for i, id := range ids {
		g.Go(func() error {
			snaps[i], errs[i] = c.r.LoadSnapshot(gctx, id)
			if err := gctx.Err(); err != nil {
				return err
			}
			mu.Lock()
			done++
			n := done
			mu.Unlock()
			c.progress(StageSnapshots, n, len(ids))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []*repo.Snapshot
	for i, id := range ids {
		if errs[i] != nil {
			c.add(finding{Problem: Problem{
				Kind:     KindSnapshot,
				Err:      fmt.Errorf("snapshot %s cannot be loaded: %w", id.Str(), errs[i]),
				Fix:      fmt.Sprintf("this backup cannot be restored (other snapshots are not affected); remove snapshots/%s from the repository and let the next backup make a new snapshot", id),
				Affected: []Affected{{Snapshot: id, Path: "/"}},
			}})
			continue
		}
		out = append(out, snaps[i])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

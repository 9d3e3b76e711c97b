package repo

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/internal/failpoint"
	"github.com/escrow-backup/escrow/remote"
)

// Snapshot is a file under snapshots/: the root tree of one backup and
// what describes it.
type Snapshot struct {
	Time           time.Time `json:"time"`
	Parent         *ID       `json:"parent,omitempty"`
	Tree           *ID       `json:"tree"`
	Paths          []string  `json:"paths"`
	Hostname       string    `json:"hostname,omitempty"`
	Username       string    `json:"username,omitempty"`
	UID            uint32    `json:"uid,omitempty"`
	GID            uint32    `json:"gid,omitempty"`
	Excludes       []string  `json:"excludes,omitempty"`
	Tags           []string  `json:"tags,omitempty"`
	Original       *ID       `json:"original,omitempty"`
	ProgramVersion string    `json:"program_version,omitempty"`
	Summary        *Summary  `json:"summary,omitempty"`

	ID ID `json:"-"`
}

// Summary records what the backup that made a snapshot did, in the fields
// newer restic versions also write.
type Summary struct {
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	FilesNew            uint64    `json:"files_new"`
	FilesChanged        uint64    `json:"files_changed"`
	FilesUnmodified     uint64    `json:"files_unmodified"`
	DirsNew             uint64    `json:"dirs_new"`
	DirsChanged         uint64    `json:"dirs_changed"`
	DirsUnmodified      uint64    `json:"dirs_unmodified"`
	DataBlobs           int       `json:"data_blobs"`
	TreeBlobs           int       `json:"tree_blobs"`
	DataAdded           uint64    `json:"data_added"`
	DataAddedPacked     uint64    `json:"data_added_packed"`
	TotalFilesProcessed uint64    `json:"total_files_processed"`
	TotalBytesProcessed uint64    `json:"total_bytes_processed"`
}

// TagIncomplete marks a snapshot some of whose files could not be read.
const TagIncomplete = "incomplete"

// HasTag reports whether the snapshot carries tag.
func (sn *Snapshot) HasTag(tag string) bool {
	for _, t := range sn.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// SaveSnapshot stores sn. Call it only after the Writer that stored the
// snapshot's blobs has closed successfully.
func (r *Repository) SaveSnapshot(ctx context.Context, sn *Snapshot) (ID, error) {
	if sn.Tree == nil {
		return ID{}, errors.New("snapshot has no tree")
	}
	id, err := r.SaveJSON(ctx, remote.SnapshotFile, sn)
	if err != nil {
		return ID{}, err
	}
	failpoint.Hit(failpoint.SnapshotUploaded)
	sn.ID = id
	return id, nil
}

// LoadSnapshot reads one snapshot.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	var sn Snapshot
	if err := r.LoadJSON(ctx, remote.SnapshotFile, id, &sn); err != nil {
		return nil, err
	}
	if sn.Tree == nil {
		return nil, fmt.Errorf("snapshot %s: %w: no tree", id.Str(), ErrCorrupt)
	}
	sn.ID = id
	return &sn, nil
}

// Snapshots loads every snapshot, oldest first. Per the read ordering rule
// the list is taken before the index is loaded, so that a snapshot written
// meanwhile is not seen without its index. A snapshot file that cannot be
// read is left out with a warning (check reports it): one damaged file must
// not hide every other backup. Storage errors still fail the call.
func (r *Repository) Snapshots(ctx context.Context) ([]*Snapshot, error) {
	ids, err := r.List(ctx, remote.SnapshotFile)
	if err != nil {
		return nil, err
	}
	out := make([]*Snapshot, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, id := range ids {
		g.Go(func() error {
			sn, err := r.LoadSnapshot(gctx, id)
			if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnauthenticated) || remote.IsNotFound(err) {
				r.log.Warn("skipping a damaged snapshot file (run `escrow check`)", "snapshot", id.Str(), "err", err)
				return nil
			}
			if err != nil {
				return fmt.Errorf("snapshot %s: %w", id.Str(), err)
			}
			out[i] = sn
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	list := out[:0]
	for _, sn := range out {
		if sn != nil {
			list = append(list, sn)
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Time.Before(list[j].Time) })
	return list, nil
}

// SnapshotFilter narrows a snapshot search.
type SnapshotFilter struct {
	Hosts []string
	Tags  []string // every tag must be present
	Paths []string // the snapshot's paths must equal these
}

// Match reports whether sn passes the filter.
func (f SnapshotFilter) Match(sn *Snapshot) bool {
	if len(f.Hosts) > 0 && !contains(f.Hosts, sn.Hostname) {
		return false
	}
	for _, t := range f.Tags {
		if !sn.HasTag(t) {
			return false
		}
	}
	if len(f.Paths) > 0 {
		if len(f.Paths) != len(sn.Paths) {
			return false
		}
		a := append([]string(nil), f.Paths...)
		b := append([]string(nil), sn.Paths...)
		sort.Strings(a)
		sort.Strings(b)
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ErrNoSnapshot means no snapshot matched.
var ErrNoSnapshot = errors.New("no matching snapshot")

// FindSnapshot resolves "latest" (the newest matching snapshot) or a unique
// prefix of a snapshot ID among snaps.
func FindSnapshot(snaps []*Snapshot, ref string, f SnapshotFilter) (*Snapshot, error) {
	if ref == "latest" {
		for i := len(snaps) - 1; i >= 0; i-- {
			if f.Match(snaps[i]) {
				return snaps[i], nil
			}
		}
		return nil, fmt.Errorf("latest: %w", ErrNoSnapshot)
	}
	ref = strings.ToLower(ref)
	if ref == "" || len(ref) > 2*IDSize {
		return nil, fmt.Errorf("snapshot %q: %w", ref, ErrNoSnapshot)
	}
	var found *Snapshot
	for _, sn := range snaps {
		if strings.HasPrefix(sn.ID.String(), ref) {
			if found != nil {
				return nil, fmt.Errorf("snapshot prefix %q is ambiguous: give more digits", ref)
			}
			found = sn
		}
	}
	if found == nil {
		return nil, fmt.Errorf("snapshot %q: %w", ref, ErrNoSnapshot)
	}
	return found, nil
}

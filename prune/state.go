package prune

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/repo"
)

// The guard remembers, per repository, what the listing held after the
// last forget or prune, so that the next run can tell when objects vanished
// that escrow did not remove: a host, an attacker or a misconfigured
// lifecycle rule deleting behind the owner's back. Acting on such a listing
// would make prune "clean up" around the damage and remove the evidence.

// packKeyLen keeps the state small: 16 hex digits of a pack's ID are
// unique in any real repository.
const packKeyLen = 16

// MaxVanishedPacks is the share of packs that may vanish between runs
// without the guard refusing; snapshots and index files may not vanish.
const MaxVanishedPacks = 0.10

type listing struct {
	Time      time.Time `json:"time"`
	Snapshots []string  `json:"snapshots"`
	Index     []string  `json:"index"`
	Packs     []string  `json:"packs"`
	// Removing are the packs the run that wrote this record was about to
	// delete: a re-run after an interruption deletes them without waiting
	// for the grace period, which protects other writers' packs, not these.
	Removing []string `json:"removing,omitempty"`
}

// StatePath is where the guard keeps repository id's listing under dir.
func StatePath(dir, repoID string) string {
	return filepath.Join(dir, repoID+".json")
}

// DefaultStateDir is the owner's cache folder for the guard:
// os.UserCacheDir()/escrow/prune.
func DefaultStateDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the cache folder for prune's listing record (set XDG_CACHE_HOME or HOME): %w", err)
	}
	return filepath.Join(d, "escrow", "prune"), nil
}

func loadListing(path string) (*listing, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read prune's listing record %s: %w", path, err)
	}
	var l listing
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("prune's listing record %s is damaged (%v): delete it to start afresh, after checking the bucket with `escrow doctor`", path, err)
	}
	return &l, nil
}

// save writes the record atomically, readable by the owner only.
func (l *listing) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("prune's listing record: %w", err)
	}
	slices.Sort(l.Snapshots)
	slices.Sort(l.Index)
	slices.Sort(l.Packs)
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".listing-*")
	if err != nil {
		return fmt.Errorf("prune's listing record: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("prune's listing record: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write prune's listing record %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write prune's listing record %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write prune's listing record %s: %w", path, err)
	}
	return nil
}

func packKey(id repo.ID) string { return id.String()[:packKeyLen] }

// ErrShrunk means objects vanished from the store since the last run.
var ErrShrunk = errors.New("the repository listing shrank since the last forget/prune")

// compare returns ErrShrunk, naming what vanished, when the current listing
// lost snapshots, index files or more than MaxVanishedPacks of the packs
// that prev recorded.
func (prev *listing) compare(cur *listing) error {
	gone := func(old, now []string) []string {
		have := make(map[string]bool, len(now))
		for _, s := range now {
			have[s] = true
		}
		var out []string
		for _, s := range old {
			if !have[s] {
				out = append(out, s)
			}
		}
		return out
	}
	snaps := gone(prev.Snapshots, cur.Snapshots)
	index := gone(prev.Index, cur.Index)
	packs := gone(prev.Packs, cur.Packs)
	packsBad := len(packs) > 0 && float64(len(packs)) > MaxVanishedPacks*float64(len(prev.Packs))
	if len(snaps) == 0 && len(index) == 0 && !packsBad {
		return nil
	}
	var what []string
	short := func(list []string) string {
		s := make([]string, 0, 5)
		for i, v := range list {
			if i == 5 {
				s = append(s, "…")
				break
			}
			s = append(s, v[:8])
		}
		return strings.Join(s, " ")
	}
	if len(snaps) > 0 {
		what = append(what, fmt.Sprintf("%d of %d snapshots (%s)", len(snaps), len(prev.Snapshots), short(snaps)))
	}
	if len(index) > 0 {
		what = append(what, fmt.Sprintf("%d of %d index files (%s)", len(index), len(prev.Index), short(index)))
	}
	if len(packs) > 0 {
		what = append(what, fmt.Sprintf("%d of %d packs (%s)", len(packs), len(prev.Packs), short(packs)))
	}
	return fmt.Errorf("%w: %s vanished since %s without escrow removing them. Someone or something deleted them: check the bucket with `escrow snapshots --as-of %s` and `escrow doctor` before pruning; if you know why (another prune, restic run by hand), run again with --force",
		ErrShrunk, strings.Join(what, ", "), prev.Time.UTC().Format(time.RFC3339), prev.Time.UTC().Format(time.RFC3339))
}

// NoteForgotten drops snapshots forget removed from repository repoID's
// record in dir, so that the next prune does not count them as vanished.
// Without a record there is nothing to update.
func NoteForgotten(dir, repoID string, removed []repo.ID) error {
	if dir == "" || len(removed) == 0 {
		return nil
	}
	path := StatePath(dir, repoID)
	l, err := loadListing(path)
	if err != nil || l == nil {
		return err
	}
	drop := map[string]bool{}
	for _, id := range removed {
		drop[id.String()] = true
	}
	l.Snapshots = slices.DeleteFunc(l.Snapshots, func(s string) bool { return drop[s] })
	return l.save(path)
}

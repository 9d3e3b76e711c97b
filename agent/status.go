package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/escrow-backup/escrow/internal/failpoint"
)

// StatusFile is the name of the status file in the state directory.
const StatusFile = "status.json"

// Status is what the running agent reports about itself, written to the
// state directory for `escrow status`. It holds paths and counts, never a
// secret.
type Status struct {
	PID        int            `json:"pid"`
	Version    string         `json:"version"`
	Started    time.Time      `json:"started"`
	Updated    time.Time      `json:"updated"`
	Repository string         `json:"repository"`
	Host       string         `json:"host"`
	Stopped    bool           `json:"stopped,omitempty"`
	Sources    []SourceStatus `json:"sources"`
	Jobs       []JobStatus    `json:"jobs,omitempty"`
	// HostID names this host's heartbeat object; LastHeartbeat is when one
	// was last written and HeartbeatError why the latest write failed.
	HostID         string    `json:"host_id,omitempty"`
	LastHeartbeat  time.Time `json:"last_heartbeat,omitzero"`
	HeartbeatError string    `json:"heartbeat_error,omitempty"`
}

// SourceStatus describes one protected tree.
type SourceStatus struct {
	Path string `json:"path"`
	// FreshWithin is the target freshness: Verified older than this is
	// stale.
	FreshWithin string `json:"fresh_within,omitempty"`
	// Watching is true when every directory has an inotify watch; when it
	// is false, WatchProblem says why and only rescans protect the source.
	Watching     bool   `json:"watching"`
	WatchProblem string `json:"watch_problem,omitempty"`
	Watches      int    `json:"watches"`
	// WatchEvents counts the file system events seen since the agent
	// started.
	WatchEvents uint64 `json:"watch_events"`

	LastSnapshot *SnapshotStatus `json:"last_snapshot,omitempty"`
	// Verified is when the tree was last known to match a snapshot: a
	// snapshot saved, or a backup that found nothing new.
	Verified time.Time `json:"verified,omitzero"`
	// PendingSince is when the oldest change not yet in a snapshot was
	// seen; zero when there is none.
	PendingSince time.Time `json:"pending_since,omitzero"`
	PendingDirs  int       `json:"pending_dirs"`

	LastRescan *RescanStatus `json:"last_rescan,omitempty"`
	NextRescan time.Time     `json:"next_rescan,omitzero"`
	// MissedTotal counts changes that scheduled rescans found and the
	// watcher had not reported, since the agent started. The target is 0.
	MissedTotal int `json:"missed_total"`
	// Deferred lists files that kept changing while being read; they are
	// retried and their previous version stays in the snapshot meanwhile.
	Deferred []string `json:"deferred,omitempty"`

	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	Failures      int       `json:"consecutive_failures"`
}

// SnapshotStatus is the newest snapshot of a source.
type SnapshotStatus struct {
	ID           string    `json:"id"`
	Time         time.Time `json:"time"`
	Kind         string    `json:"kind"` // "incremental" or "rescan"
	FilesNew     uint64    `json:"files_new"`
	FilesChanged uint64    `json:"files_changed"`
	BytesAdded   uint64    `json:"bytes_added"`
	Seconds      float64   `json:"seconds"`
	// Unreadable lists paths that could not be read (at most 20); the
	// snapshot is then tagged incomplete.
	Unreadable []string `json:"unreadable,omitempty"`
}

// RescanStatus is the result of the latest full rescan of a source.
type RescanStatus struct {
	Time   time.Time `json:"time"`
	Reason string    `json:"reason"`
	// Changes is how many entries differed from the previous snapshot;
	// Missed is how many of those the watcher had not reported (counted
	// for scheduled rescans only: changes made while the agent was not
	// running are not misses).
	Changes int `json:"changes"`
	Missed  int `json:"missed"`
}

// WriteStatus replaces the status file atomically.
func WriteStatus(dir string, st *Status) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".status-*")
	if err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write status: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	failpoint.Hit(failpoint.StateWrite)
	return os.Rename(tmp.Name(), filepath.Join(dir, StatusFile))
}

// ErrNoStatus means no agent has written a status file in the directory.
var ErrNoStatus = errors.New("no agent status")

// ReadStatus reads the status file of the state directory dir and reports
// whether an agent holds the directory now.
func ReadStatus(dir string) (*Status, bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Running(dir), fmt.Errorf("%w in %s: the agent has not run with this state directory (start it with: escrow agent --config FILE)", ErrNoStatus, dir)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read agent status: %w", err)
	}
	var st Status
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, false, fmt.Errorf("read agent status %s: %w", filepath.Join(dir, StatusFile), err)
	}
	return &st, Running(dir), nil
}

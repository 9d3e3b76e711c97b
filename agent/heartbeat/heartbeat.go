// Package heartbeat is the format of the small JSON report every agent
// writes to the store outside restic's folders
// (PREFIX/escrow/heartbeats/HOST-ID.json), and what a fleet view reads back
// with read-only access and no repository password.
//
// A heartbeat is plaintext: it names the host, its source paths and
// database names, times and error messages, never file contents or a
// secret.
package heartbeat

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// Format is the version of the heartbeat format written here. Readers
// accept higher versions and read the fields they know.
const Format = 1

// MaxSize bounds a heartbeat a reader accepts.
const MaxSize = 1 << 20

// Suffix ends every heartbeat object's name.
const Suffix = ".json"

// Heartbeat is one agent's report about itself.
type Heartbeat struct {
	Format  int    `json:"format"`
	HostID  string `json:"host_id"`
	Host    string `json:"host"`
	Version string `json:"version"`
	// Time is when the heartbeat was written; Every is how often the agent
	// writes one, so a reader can tell when it is overdue.
	Time         time.Time `json:"time"`
	EverySeconds int64     `json:"every_seconds"`
	Started      time.Time `json:"started,omitzero"`
	// Stopped is set on the last heartbeat of an agent that was stopped on
	// purpose (service stop, shutdown).
	Stopped      bool   `json:"stopped,omitempty"`
	RepositoryID string `json:"repository_id,omitempty"`

	Sources   []Item `json:"sources"`
	Databases []Item `json:"databases,omitempty"`
	// Escrow is the last `escrow doctor` verdict on this host; nil when
	// doctor has not run there.
	Escrow       *Verdict `json:"escrow,omitempty"`
	KitConfirmed bool     `json:"kit_confirmed"`
}

// Item reports on one source (Name is its path) or database (its name).
type Item struct {
	Name string `json:"name"`
	// LastGood is the time of the newest good snapshot; LastSnapshot its
	// ID.
	LastGood     time.Time `json:"last_good,omitzero"`
	LastSnapshot string    `json:"last_snapshot,omitempty"`
	// FreshSeconds is the item's target freshness: LastGood older than
	// this is a problem.
	FreshSeconds  int64     `json:"fresh_seconds,omitempty"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	Failures      int       `json:"consecutive_failures,omitempty"`
}

// Every returns EverySeconds as a duration.
func (h *Heartbeat) Every() time.Duration { return time.Duration(h.EverySeconds) * time.Second }

// Handle names the heartbeat object of hostID.
func Handle(hostID string) remote.Handle {
	return remote.Handle{Type: remote.HeartbeatFile, Name: hostID + Suffix}
}

// Marshal encodes h.
func Marshal(h *Heartbeat) ([]byte, error) {
	data, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode heartbeat: %w", err)
	}
	return append(data, '\n'), nil
}

// Parse decodes a heartbeat, refusing one without a host or time.
func Parse(data []byte) (*Heartbeat, error) {
	var h Heartbeat
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("not a heartbeat: %w", err)
	}
	switch {
	case h.Format < 1:
		return nil, errors.New("not a heartbeat: no format version")
	case h.Host == "" && h.HostID == "":
		return nil, errors.New("not a heartbeat: no host")
	case h.Time.IsZero():
		return nil, errors.New("not a heartbeat: no time")
	}
	return &h, nil
}

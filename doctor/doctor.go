// Package doctor proves what the credentials in use can and cannot do to
// the escrow. It does not trust settings it reads: on a canary object it
// writes for the purpose, it tries every way a host could destroy stored
// versions (delete a version, hide it behind a delete marker, shorten its
// retention, bypass governance, change the lifecycle, versioning, bucket
// policy or Object Lock configuration) and expects each to be refused, and
// it checks that the same credentials can still put, get and list.
//
// A probe that is unexpectedly allowed must do as little harm as possible,
// so each one changes only the canary or re-sets exactly the configuration
// it read just before; see probe.go.
package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/kit"
	"github.com/escrow-backup/escrow/remote/s3"
)

// StateFile is the last report's name in the agent's state directory;
// escrow status and the fleet view read it.
const StateFile = "doctor.json"

// Result is how the store answered a probe.
type Result string

const (
	// Allowed: the request succeeded.
	Allowed Result = "allowed"
	// Refused: the store refused it (access denied, or the retention
	// forbade it); nothing changed.
	Refused Result = "refused"
	// Untested: it could not be tried; Check.Detail says why. A tamper-
	// proof verdict needs every attack refused, so an untested one counts
	// against it.
	Untested Result = "untested"
)

// Check is one thing doctor tried.
type Check struct {
	// Name is stable for machines: put, get, list, delete-marker,
	// delete-version, delete-version-bypass, shorten-retention,
	// shorten-retention-bypass, put-lifecycle, put-versioning,
	// put-bucket-policy, put-object-lock.
	Name string `json:"name"`
	// Action says in words what was tried.
	Action string `json:"action"`
	Result Result `json:"result"`
	// Want is the answer of a tamper-proof escrow that can back up.
	Want Result `json:"want"`
	// Detail is the store's answer, or why the probe was not tried.
	Detail string `json:"detail,omitempty"`
}

// Finding is one thing wrong: what an attacker on this host could do, or
// what protection or ability is missing, and how to fix it.
type Finding struct {
	// Check names the Check it comes from, or "versioning", "object-lock",
	// "retention" or "store" for the bucket's protection.
	Check   string `json:"check"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
	// Attack is true when it lets someone on this host destroy or hide
	// stored data, or leaves that unproven; false when only backing up is
	// impaired.
	Attack bool `json:"attack"`
}

// Report is doctor's result. Written to <state_dir>/doctor.json as JSON.
type Report struct {
	Time       time.Time `json:"time"`
	Repository string    `json:"repository"`
	// Verdict is one line for people.
	Verdict string `json:"verdict"`
	// TamperProof: stored versions are kept for a retention period and
	// nothing these credentials tried could delete, hide or shorten them.
	TamperProof bool `json:"tamper_proof"`
	// CanBackUp: these credentials can put, get and list.
	CanBackUp bool `json:"can_back_up"`
	// Versioning is "enabled", "suspended", "off" or "unknown" (could not
	// be read); empty for a directory.
	Versioning string `json:"versioning,omitempty"`
	ObjectLock bool   `json:"object_lock"`
	// Retention is the bucket's default retention; nil when none.
	Retention *s3.Retention `json:"retention,omitempty"`
	// CanaryRetainUntil is when the retention of the canary doctor wrote
	// ends: the default retention, seen applied.
	CanaryRetainUntil *time.Time `json:"canary_retain_until,omitempty"`
	Checks            []Check    `json:"checks"`
	Findings          []Finding  `json:"findings"`
}

// Local is the report for a repository in a directory: nothing keeps
// versions there, so whoever can write the directory can destroy it.
func Local(dir string, now time.Time) *Report {
	r := &Report{Time: now, Repository: dir, CanBackUp: true, Checks: []Check{}}
	r.Findings = []Finding{{
		Check:   "store",
		Problem: "a directory has no versioning or Object Lock: root on this host (or anyone who can write " + dir + ") can delete or overwrite every backup",
		Fix:     "back up to S3 storage created with escrow init --object-lock (see docs/tamper-proof.md); keep a directory repository only as an extra copy",
		Attack:  true,
	}}
	r.conclude()
	return r
}

// conclude sets TamperProof, CanBackUp and Verdict from the findings.
func (r *Report) conclude() {
	var attacks, abilities []string
	for _, f := range r.Findings {
		if f.Attack {
			attacks = append(attacks, f.Problem)
		} else {
			abilities = append(abilities, f.Problem)
		}
	}
	r.TamperProof = len(attacks) == 0
	r.CanBackUp = len(abilities) == 0
	switch {
	case !r.TamperProof:
		r.Verdict = "NOT tamper-proof: " + strings.Join(attacks, "; ")
	case r.Retention != nil:
		r.Verdict = fmt.Sprintf("tamper-proof: versions kept %d days in %s mode; this host cannot delete or shorten them",
			r.Retention.Days, strings.ToLower(r.Retention.Mode))
	default:
		r.Verdict = "tamper-proof"
	}
	if !r.CanBackUp {
		r.Verdict += "; and these credentials cannot back up: " + strings.Join(abilities, "; ")
	}
}

// Save writes r to dir/doctor.json (mode 0600, replaced atomically),
// creating dir (0700) if needed.
func (r *Report) Save(dir string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state directory %s: %w (create it, or set state_dir to a writable directory)", dir, err)
	}
	if err := kit.WriteFile(filepath.Join(dir, StateFile), append(data, '\n'), true); err != nil {
		return fmt.Errorf("save the doctor's verdict in %s: %w", dir, err)
	}
	return nil
}

// ErrNoReport: doctor has not saved a report in the state directory.
var ErrNoReport = errors.New("no doctor report")

// Load reads the last report saved in dir.
func Load(dir string) (*Report, error) {
	name := filepath.Join(dir, StateFile)
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: run escrow doctor", ErrNoReport, dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read the doctor's verdict: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("the doctor's verdict %s is damaged (%v): run escrow doctor again", name, err)
	}
	return &r, nil
}

package heartbeat

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// HostIDFile holds the host's heartbeat ID in the state directory.
const HostIDFile = "host-id"

// HostID returns the ID this host's heartbeats are written under: its
// name made safe for an object name, and a random part kept in the state
// directory, so that two servers with the same name (clones, a reused
// name) never overwrite each other's heartbeat and a restarted agent keeps
// its ID.
func HostID(stateDir, host string) (string, error) {
	name := filepath.Join(stateDir, HostIDFile)
	data, err := os.ReadFile(name)
	if err == nil {
		if id := strings.TrimSpace(string(data)); validID(id) {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read host ID %s: %w", name, err)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("host ID: %w", err)
	}
	id := safeName(host) + "-" + hex.EncodeToString(rnd[:])
	if err := os.WriteFile(name, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save host ID %s: %w (check that state_dir is writable)", name, err)
	}
	return id, nil
}

// safeName keeps letters, digits, dots and dashes of a host name, so the
// ID is a valid object name on every store.
func safeName(host string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(host) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 64 {
			break
		}
	}
	s := strings.Trim(b.String(), ".-")
	if s == "" {
		return "host"
	}
	return s
}

func validID(id string) bool {
	return id != "" && len(id) <= 100 && safeName(id) == id
}

// DoctorFile is where `escrow doctor` saves its last verdict in the state
// directory.
const DoctorFile = "doctor.json"

// Verdict is the last `escrow doctor` result.
type Verdict struct {
	Time        time.Time `json:"time"`
	Verdict     string    `json:"verdict"`
	TamperProof bool      `json:"tamper_proof"`
}

// ReadVerdict reads the doctor's last verdict from the state directory;
// nil without error when doctor has not run. It reads only the fields it
// knows, so a newer doctor's file still reads.
func ReadVerdict(stateDir string) (*Verdict, error) {
	name := filepath.Join(stateDir, DoctorFile)
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read doctor verdict: %w", err)
	}
	var v Verdict
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("read doctor verdict %s: %w (run escrow doctor again to rewrite it)", name, err)
	}
	if v.Verdict == "" && v.Time.IsZero() {
		return nil, fmt.Errorf("read doctor verdict %s: no verdict in it (run escrow doctor again to rewrite it)", name)
	}
	return &v, nil
}

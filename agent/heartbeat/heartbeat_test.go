package heartbeat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHostIDIsStableAndSafe(t *testing.T) {
	for _, tc := range []struct{ host, prefix string }{
		{"web1.example.com", "web1.example.com-"},
		{"Web 1/../x", "web-1-..-x-"},
		{"", "host-"},
		{"...", "host-"},
	} {
		dir := t.TempDir()
		id, err := HostID(dir, tc.host)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(id, tc.prefix) || len(id) != len(tc.prefix)+12 || !validID(id) {
			t.Errorf("HostID(%q) = %q, want %s + 12 hex digits", tc.host, id, tc.prefix)
		}
		again, err := HostID(dir, "renamed")
		if err != nil || again != id {
			t.Errorf("second HostID = %q, %v; want the saved %q", again, err, id)
		}
		if fi, err := os.Stat(filepath.Join(dir, HostIDFile)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("host ID file: %v %v", fi, err)
		}
	}
	other, _ := HostID(t.TempDir(), "web1.example.com")
	same, _ := HostID(t.TempDir(), "web1.example.com")
	if other == same {
		t.Error("two state directories of hosts with the same name share an ID")
	}
}

func TestHostIDUnwritableStateDir(t *testing.T) {
	_, err := HostID(filepath.Join(t.TempDir(), "missing"), "web1")
	if err == nil || !strings.Contains(err.Error(), "state_dir") {
		t.Fatalf("err = %v, want one naming the file and state_dir", err)
	}
}

func TestReadVerdict(t *testing.T) {
	dir := t.TempDir()
	if v, err := ReadVerdict(dir); v != nil || err != nil {
		t.Fatalf("without doctor.json: %v, %v", v, err)
	}
	name := filepath.Join(dir, DoctorFile)
	for _, bad := range []string{"{not json", `{"other":1}`} {
		if err := os.WriteFile(name, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadVerdict(dir); err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "escrow doctor") {
			t.Errorf("%s: err = %v, want one naming the file and the fix", bad, err)
		}
	}
	if err := os.WriteFile(name, []byte(`{"time":"2026-01-02T03:04:05Z","verdict":"not protected","tamper_proof":false,"extra":[1]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := ReadVerdict(dir)
	if err != nil || v.Verdict != "not protected" || v.TamperProof || !v.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("ReadVerdict = %+v, %v", v, err)
	}
}

func TestParseRefusesNonHeartbeats(t *testing.T) {
	for _, bad := range []string{"", "[]", `{"format":1,"time":"2026-01-02T03:04:05Z"}`, `{"format":1,"host":"a"}`, `{"host":"a","time":"2026-01-02T03:04:05Z"}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted it", bad)
		}
	}
	data, err := Marshal(&Heartbeat{Format: Format, HostID: "a-1", Host: "a", Time: time.Now(), Sources: []Item{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data); err != nil {
		t.Errorf("Parse(Marshal) = %v", err)
	}
}

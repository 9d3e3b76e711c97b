package heartbeat

import (
	"bytes"
	"testing"
	"time"
)

// fuzzSeeds are heartbeats as agents write them: a busy host with a
// failing database and a doctor verdict, and a stopped one.
func fuzzSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	beats := []*Heartbeat{
		{Format: Format, HostID: "web1-3f2a", Host: "web1", Version: "escrow 0.9", Time: t0, EverySeconds: 300,
			Started: t0.Add(-time.Hour), RepositoryID: "5c8b1f0e", KitConfirmed: true,
			Sources:   []Item{{Name: "/var/www", LastGood: t0.Add(-time.Minute), LastSnapshot: "0a1b2c3d", FreshSeconds: 3600}},
			Databases: []Item{{Name: "shop", LastError: "mariadb-dump: access denied", LastErrorTime: t0, Failures: 3}},
			Escrow:    &Verdict{Time: t0.Add(-24 * time.Hour), Verdict: "tamper-proof", TamperProof: true}},
		{Format: Format, Host: "db2", Time: t0, Stopped: true, Sources: []Item{}},
	}
	var out [][]byte
	for _, h := range beats {
		data, err := Marshal(h)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// FuzzParseHeartbeat: heartbeats are read from the store, where any host of the
// fleet (or whoever holds a host's credentials) writes them. Parse must not
// panic, and what it accepts must satisfy its promises and write back the
// same.
func FuzzParseHeartbeat(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Add([]byte(`{"format":1,"host":"a","time":"2026-01-02T03:04:05Z","every_seconds":-9223372036854775808}`))
	f.Add([]byte(`{"format":2,"host_id":"x","time":"9999-12-31T23:59:59.999999999+23:59","sources":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Parse(data)
		if err != nil {
			return
		}
		if h.Format < 1 || h.Host == "" && h.HostID == "" || h.Time.IsZero() {
			t.Fatalf("Parse accepted %+v", h)
		}
		_ = h.Every()
		out, err := Marshal(h)
		if err != nil {
			return // a time JSON cannot write: an agent never wrote it
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("a written heartbeat does not parse: %v\n%s", err, out)
		}
		out2, err := Marshal(again)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("heartbeat changes on a round trip (%v):\n%s\n%s", err, out, out2)
		}
	})
}

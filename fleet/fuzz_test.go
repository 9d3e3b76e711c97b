package fleet

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent/heartbeat"
)

// FuzzJudge feeds what escrow fleet reads from the store (one host's
// heartbeat, beside snapshots of the same and of another host) through the
// judging and the JSON report: no input may panic, every host gets a
// state, and the counts add up.
func FuzzJudge(f *testing.F) {
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for _, h := range []*heartbeat.Heartbeat{
		{Format: heartbeat.Format, HostID: "web1-3f2a", Host: "web1", Time: t0, EverySeconds: 300, Started: t0.Add(-time.Hour),
			Sources:   []heartbeat.Item{{Name: "/var/www", LastGood: t0.Add(-2 * time.Hour), FreshSeconds: 3600}},
			Databases: []heartbeat.Item{{Name: "shop", LastError: "access denied", Failures: 2}}},
		{Format: heartbeat.Format, Host: "db2", Time: t0.Add(-48 * time.Hour), Stopped: true, Sources: []heartbeat.Item{}},
	} {
		data, err := heartbeat.Marshal(h)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, int64(0))
		f.Add(data, int64(time.Hour))
	}
	f.Add([]byte(`{"format":1,"host":"a","time":"0001-01-01T00:00:00.000000001Z","every_seconds":9223372036854775807,"sources":[{"name":"x","fresh_seconds":-1}]}`), int64(-1))
	now := t0.Add(10 * time.Minute)
	f.Fuzz(func(t *testing.T, data []byte, stale int64) {
		hb, err := heartbeat.Parse(data)
		if err != nil {
			return
		}
		r := &Report{
			Hosts:      []*Host{{Dir: "site", Key: "site/escrow/heartbeats/h.json", Heartbeat: hb}},
			StaleFixed: stale > 0,
			Repositories: []*Repository{{Dir: "site", Read: true, Latest: []Latest{
				{Host: hb.Host, Paths: []string{"/var/www"}, Time: t0, ID: "0a1b2c3d"},
				{Host: "other", Paths: []string{"/srv"}, Time: t0, ID: "1a2b3c4d"},
			}}},
		}
		opts := Options{Stale: time.Duration(stale), Now: func() time.Time { return now }}
		if stale <= 0 {
			opts.Stale = DefaultStale
		}
		r.judge(opts)
		for _, h := range r.Hosts {
			switch h.State {
			case StateOK, StateFailing, StateStopped, StateSilent:
			default:
				t.Fatalf("host %q has state %q", h.Name, h.State)
			}
		}
		if r.OK+r.Failing+r.Stopped+r.Silent != len(r.Hosts) {
			t.Fatalf("counts %d+%d+%d+%d for %d hosts", r.OK, r.Failing, r.Stopped, r.Silent, len(r.Hosts))
		}
		_ = r.Unhealthy()
		if _, err := json.Marshal(r); err != nil {
			// Times come from JSON, so they encode again.
			t.Fatalf("the report does not encode: %v", err)
		}
	})
}

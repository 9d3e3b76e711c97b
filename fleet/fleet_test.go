package fleet_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/agent/heartbeat"
	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/fleet"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const password = "fleet test password"

var (
	fastKDF = repo.KDFParams{N: 1024, R: 8, P: 1}
	now     = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
)

// layout is a store with many repositories, written through the same
// remote.Backend the agent writes with.
type layout struct {
	t *testing.T
	// open returns the backend of the repository folder dir, creating it.
	open func(dir string) remote.Backend
	// store reads the whole tree.
	store fleet.Store
}

func (l *layout) beat(dir string, hb heartbeat.Heartbeat) {
	l.t.Helper()
	hb.Format = heartbeat.Format
	hb.HostID = hb.Host + "-0123456789ab"
	data, err := heartbeat.Marshal(&hb)
	must(l.t, err)
	must(l.t, l.open(dir).Save(context.Background(), heartbeat.Handle(hb.HostID), data))
}

// repository makes a repository in dir with one snapshot per host.
func (l *layout) repository(dir string, hosts ...string) {
	l.t.Helper()
	ctx := context.Background()
	r, err := repo.Init(ctx, l.open(dir), password, repo.Options{KDF: fastKDF})
	must(l.t, err)
	defer r.Close()
	src := l.t.TempDir()
	must(l.t, os.WriteFile(filepath.Join(src, "index.html"), []byte("<p>"+dir+"</p>"), 0o600))
	for _, h := range hosts {
		_, err := backup.Files(ctx, r, backup.Options{Paths: []string{src}, Host: h, Now: func() time.Time { return now.Add(-time.Hour) }})
		must(l.t, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func s3Layout(t *testing.T) *layout {
	srv := testenv.MinIO(t)
	cfg := s3.Config{Endpoint: srv.Endpoint, UseHTTPS: srv.Secure, Bucket: srv.NewBucket(t), KeyID: srv.AccessKey, Secret: srv.SecretKey}
	be, err := s3.Create(context.Background(), cfg)
	must(t, err)
	t.Cleanup(func() { be.Close() })
	return &layout{t: t, store: be, open: func(dir string) remote.Backend { return be.Sub(dir) }}
}

func localLayout(t *testing.T) *layout {
	root := t.TempDir()
	tree, err := local.OpenTree(root)
	must(t, err)
	return &layout{t: t, store: tree, open: func(dir string) remote.Backend {
		p := filepath.Join(root, filepath.FromSlash(dir))
		if be, err := local.Open(p); err == nil {
			return be
		}
		be, err := local.Create(context.Background(), p)
		must(t, err)
		return be
	}}
}

// fill writes a fleet with one host in each state, in every arrangement:
// one repository per prefix, several hosts sharing one, a repository at a
// deeper prefix, and a repository with snapshots but no heartbeat.
func fill(l *layout) {
	ok := heartbeat.Item{Name: "/var/www/site", LastGood: now.Add(-10 * time.Minute), FreshSeconds: 12 * 3600}
	l.repository("site1", "web1")
	l.beat("site1", heartbeat.Heartbeat{Host: "web1", Version: "escrow 1", Time: now.Add(-2 * time.Minute), Sources: []heartbeat.Item{ok},
		Escrow: &heartbeat.Verdict{Verdict: "tamper-proof", TamperProof: true}, KitConfirmed: true})
	// Writes hourly: 40 minutes is not silent yet.
	l.beat("site1", heartbeat.Heartbeat{Host: "web6", Time: now.Add(-40 * time.Minute), EverySeconds: 3600, Sources: []heartbeat.Item{ok}})
	// A server that vanished a day ago.
	l.repository("reseller/site2", "web2")
	l.beat("reseller/site2", heartbeat.Heartbeat{Host: "web2", Time: now.Add(-24 * time.Hour), Sources: []heartbeat.Item{ok}})
	// Three hosts sharing one repository: failing, stale source, stopped.
	l.repository("shared")
	l.beat("shared", heartbeat.Heartbeat{Host: "web3", Time: now.Add(-time.Minute), Sources: []heartbeat.Item{
		{Name: "/srv/app", LastGood: now.Add(-time.Hour), LastError: "open /srv/app/x: permission denied", Failures: 3},
	}})
	l.beat("shared", heartbeat.Heartbeat{Host: "web4", Time: now.Add(-time.Minute), Databases: []heartbeat.Item{
		{Name: "database shop", LastGood: now.Add(-3 * time.Hour), FreshSeconds: 7200},
	}})
	l.beat("shared", heartbeat.Heartbeat{Host: "web5", Time: now.Add(-time.Minute), Stopped: true})
	// Snapshots from a host that never wrote a heartbeat here.
	l.repository("legacy", "ghost")
	// Not a heartbeat.
	must(l.t, l.open("shared").Save(context.Background(), remote.Handle{Type: remote.HeartbeatFile, Name: "junk.json"}, []byte("{oops")))
}

func states(rep *fleet.Report) map[string]string {
	out := map[string]string{}
	for _, h := range rep.Hosts {
		out[h.Name] = h.State
	}
	return out
}

func TestScan(t *testing.T) {
	for name, mk := range map[string]func(*testing.T) *layout{"local": localLayout, "s3": s3Layout} {
		t.Run(name, func(t *testing.T) {
			l := mk(t)
			fill(l)
			ctx := context.Background()
			opts := fleet.Options{Now: func() time.Time { return now }, Parallel: 4}

			rep, err := fleet.Scan(ctx, l.store, opts)
			must(t, err)
			want := map[string]string{"web1": "ok", "web6": "ok", "web2": "silent", "web3": "failing", "web4": "failing", "web5": "stopped"}
			if got := states(rep); !maps.Equal(got, want) {
				t.Errorf("heartbeats only: states %v, want %v", got, want)
			}
			if len(rep.Repositories) != 4 || rep.Silent != 1 || rep.Failing != 2 || rep.Stopped != 1 || rep.OK != 2 || !rep.Unhealthy() {
				t.Errorf("report %+v", rep)
			}
			if rep.Hosts[0].Name != "web2" || rep.Hosts[0].Dir != "reseller/site2" {
				t.Errorf("the silent host is not listed first, with its folder: %+v", rep.Hosts[0])
			}
			if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "shared/escrow/heartbeats/junk.json") {
				t.Errorf("problems %q, want the unreadable heartbeat named", rep.Problems)
			}
			joined := func(h string) string {
				i := slices.IndexFunc(rep.Hosts, func(x *fleet.Host) bool { return x.Name == h })
				return strings.Join(rep.Hosts[i].Problems, "\n")
			}
			if p := joined("web3"); !strings.Contains(p, "permission denied") {
				t.Errorf("web3 problems %q", p)
			}
			if p := joined("web4"); !strings.Contains(p, "database shop: last good backup") {
				t.Errorf("web4 problems %q", p)
			}

			// With the password, the repositories' own snapshots: the host
			// that never wrote a heartbeat shows up as silent.
			opts.Snapshots = func(ctx context.Context, dir string) ([]*repo.Snapshot, error) {
				r, err := repo.Open(ctx, l.open(dir), password, repo.Options{})
				if err != nil {
					return nil, err
				}
				defer r.Close()
				return r.Snapshots(ctx)
			}
			rep, err = fleet.Scan(ctx, l.store, opts)
			must(t, err)
			want["ghost"] = "silent"
			if got := states(rep); !maps.Equal(got, want) {
				t.Errorf("with snapshots: states %v, want %v", got, want)
			}
			for _, h := range rep.Hosts {
				if (h.Name == "web1" || h.Name == "ghost" || h.Name == "web2") && (len(h.Latest) != 1 || !h.Latest[0].Time.Equal(now.Add(-time.Hour))) {
					t.Errorf("%s: newest snapshots %+v", h.Name, h.Latest)
				}
			}

			// An explicit --stale is not extended by a host's period.
			opts.Snapshots = nil
			opts.Stale = 30 * time.Minute
			rep, err = fleet.Scan(ctx, l.store, opts)
			must(t, err)
			if st := states(rep)["web6"]; st != fleet.StateSilent {
				t.Errorf("web6 with an explicit stale: %s, want silent", st)
			}

			// One prefix only, and a depth that stops above the deeper one.
			opts.MaxDepth = 1
			rep, err = fleet.Scan(ctx, l.store, opts)
			must(t, err)
			if _, ok := states(rep)["web2"]; ok || !slices.Contains(rep.Truncated, "reseller/site2") {
				t.Errorf("depth 1 found %v, truncated %v", states(rep), rep.Truncated)
			}
		})
	}
}

// An address with nothing under it is a problem, not an empty healthy
// fleet: the address is probably wrong.
func TestScanEmpty(t *testing.T) {
	tree, err := local.OpenTree(t.TempDir())
	must(t, err)
	rep, err := fleet.Scan(context.Background(), tree, fleet.Options{})
	must(t, err)
	if !rep.Unhealthy() || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "check the address") {
		t.Errorf("report %+v", rep)
	}
}

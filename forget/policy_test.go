package forget

import (
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// makeSnapshots writes n snapshots at random times over about three years,
// from two hosts, of two path sets, some tagged, into a new local
// repository, and returns its folder and password file.
func makeSnapshots(t *testing.T, n int) (string, string, []*repo.Snapshot) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "repo")
	be, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, "pw", repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := r.NewWriter(ctx)
	tree, err := w.SaveTree(ctx, &repo.Tree{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(5))
	// A zone with an offset makes day and week boundaries differ from UTC's,
	// which restic also honours.
	zone := time.FixedZone("", 5*3600+1800)
	at := time.Date(2023, 1, 1, 0, 0, 0, 0, zone)
	var snaps []*repo.Snapshot
	for i := 0; i < n; i++ {
		// Mostly hours apart, sometimes days or weeks, never equal.
		gap := time.Duration(1+rnd.Intn(20))*time.Hour + time.Duration(rnd.Intn(3600))*time.Second
		if rnd.Intn(10) == 0 {
			gap += time.Duration(rnd.Intn(40)) * 24 * time.Hour
		}
		at = at.Add(gap)
		sn := &repo.Snapshot{Time: at, Tree: &tree, Hostname: []string{"web1", "web2"}[rnd.Intn(2)],
			Paths: [][]string{{"/var/www"}, {"/databases/shop.sql"}}[rnd.Intn(2)]}
		switch rnd.Intn(8) {
		case 0:
			sn.Tags = []string{"manual"}
		case 1:
			sn.Tags = []string{"manual", "release"}
		}
		if _, err := r.SaveSnapshot(ctx, sn); err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, sn)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("pw"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, pw, snaps
}

// TestPolicyMatchesRestic runs the same policies through escrow and the
// real restic (forget --dry-run --json) and requires the same kept set.
func TestPolicyMatchesRestic(t *testing.T) {
	restic := testenv.RequireBinary(t, "restic")
	dir, pw, snaps := makeSnapshots(t, 400)
	within := func(s string) Duration {
		d, err := ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	cases := []struct {
		name    string
		args    []string
		policy  Policy
		groupBy string
	}{
		{"last", []string{"--keep-last", "7"}, Policy{Last: 7}, "host,paths"},
		{"hourly-daily", []string{"--keep-hourly", "24", "--keep-daily", "14"}, Policy{Hourly: 24, Daily: 14}, "host,paths"},
		{"calendar", []string{"--keep-hourly", "24", "--keep-daily", "14", "--keep-weekly", "8", "--keep-monthly", "12", "--keep-yearly", "3"},
			Policy{Hourly: 24, Daily: 14, Weekly: 8, Monthly: 12, Yearly: 3}, "host,paths"},
		{"weekly one group", []string{"--keep-weekly", "30"}, Policy{Weekly: 30}, ""},
		{"within", []string{"--keep-within", "1m15d"}, Policy{Within: within("1m15d")}, "host"},
		{"within and last", []string{"--keep-within", "2d12h", "--keep-last", "3", "--keep-monthly", "4"}, Policy{Within: within("2d12h"), Last: 3, Monthly: 4}, "host,paths"},
		{"within buckets", []string{"--keep-within-daily", "20d", "--keep-within-weekly", "3m", "--keep-within-monthly", "1y"},
			Policy{WithinDaily: within("20d"), WithinWeekly: within("3m"), WithinMonthly: within("1y")}, "host,paths"},
		{"tags", []string{"--keep-tag", "manual,release", "--keep-last", "2"}, Policy{Tags: [][]string{{"manual", "release"}}, Last: 2}, "host,paths,tags"},
		{"yearly by tags", []string{"--keep-yearly", "10", "--keep-daily", "3"}, Policy{Yearly: 10, Daily: 3}, "tags"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--no-cache", "-r", dir, "--password-file", pw, "forget", "--dry-run", "--json", "--group-by", tc.groupBy}, tc.args...)
			out, err := exec.Command(restic, args...).Output()
			if err != nil {
				t.Fatalf("restic %v: %v\n%s", args, err, out)
			}
			var groups []struct {
				Keep   []struct{ ID string } `json:"keep"`
				Remove []struct{ ID string } `json:"remove"`
			}
			if err := json.Unmarshal(out, &groups); err != nil {
				t.Fatalf("restic output: %v\n%s", err, out)
			}
			var theirs []string
			removed := 0
			for _, g := range groups {
				for _, s := range g.Keep {
					theirs = append(theirs, s.ID)
				}
				removed += len(g.Remove)
			}
			by, err := ParseGroupBy(tc.groupBy)
			if err != nil {
				t.Fatal(err)
			}
			var ours []string
			ourRemoved := 0
			for _, g := range Groups(snaps, by) {
				for _, d := range tc.policy.Apply(g.Snapshots) {
					if d.Keep {
						ours = append(ours, d.Snapshot.ID.String())
					} else {
						ourRemoved++
					}
				}
			}
			sort.Strings(theirs)
			sort.Strings(ours)
			if len(theirs) == 0 || removed == 0 {
				t.Fatalf("restic kept %d and removed %d: the case tests nothing", len(theirs), removed)
			}
			if len(ours) != len(theirs) || ourRemoved != removed {
				t.Fatalf("escrow keeps %d and removes %d, restic keeps %d and removes %d", len(ours), ourRemoved, len(theirs), removed)
			}
			for i := range ours {
				if ours[i] != theirs[i] {
					t.Fatalf("kept sets differ at %d: escrow %s, restic %s", i, ours[i], theirs[i])
				}
			}
			t.Logf("%s: both keep %d and remove %d of %d", tc.name, len(ours), removed, len(snaps))
		})
	}
}

func TestPreDeletionAlwaysKept(t *testing.T) {
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var snaps []*repo.Snapshot
	for i := range 10 {
		sn := &repo.Snapshot{Time: base.Add(time.Duration(i) * time.Hour), Hostname: "h"}
		sn.ID[0] = byte(i)
		if i == 2 {
			sn.Tags = []string{TagPreDeletion}
		}
		snaps = append(snaps, sn)
	}
	kept := 0
	for _, d := range (Policy{Last: 1}).Apply(snaps) {
		if d.Keep {
			kept++
		}
		if d.Snapshot.HasTag(TagPreDeletion) && (!d.Keep || d.Reasons[0] != "tagged pre-deletion (always kept)") {
			t.Fatalf("pre-deletion snapshot: %+v", d)
		}
	}
	if kept != 2 {
		t.Fatalf("kept %d, want the last and the pre-deletion one", kept)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Duration
		err  bool
	}{
		{"30d", Duration{Days: 30}, false},
		{"1y6m", Duration{Years: 1, Months: 6}, false},
		{"2y5m7d3h", Duration{2, 5, 7, 3}, false},
		{"", Duration{}, true},
		{"5", Duration{}, true},
		{"5w", Duration{}, true},
		{"d", Duration{}, true},
	} {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v", tc.in, got, err)
		}
	}
	if s := (Duration{2, 5, 7, 3}).String(); s != "2y5m7d3h" {
		t.Errorf("String = %q", s)
	}
	if _, err := ParseGroupBy("host,bogus"); err == nil {
		t.Error("ParseGroupBy accepted an unknown field")
	}
}

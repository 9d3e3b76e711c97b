package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/agent/heartbeat"
	"github.com/escrow-backup/escrow/fleet"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

type fleetOptions struct {
	Stale    time.Duration
	staleSet bool
	Parallel int
	Depth    int
}

func newFleetCommand(g *globalOptions) *cobra.Command {
	var o fleetOptions
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "Show every host that backs up under a bucket or prefix, and which went silent",
		Long: `Read the heartbeat every agent writes to its store (PREFIX/escrow/heartbeats/)
under --repo, which may be one repository, a prefix holding many, or a whole
bucket (repositories are looked for up to --depth folders deep), and print one
line per host: its state, last heartbeat, last good backup per source and
database, errors, whether its escrow is tamper-proof, and its version.

Only read access is needed. With a repository password (--password-file,
$ESCROW_PASSWORD_FILE, $ESCROW_PASSWORD or --kit), the newest snapshot of
each host and source is also read from every repository that password opens,
independently of the heartbeats; without one, heartbeats only.

A host is silent when its newest heartbeat is older than --stale (without
the flag: 30 minutes, or three of its own heartbeat periods if longer), stopped when its agent was stopped
on purpose, failing when a source or database reports an error or is older
than its target freshness.

Exit status: 0 when every host is ok; 5 when a host is silent (or has
snapshots but no heartbeat); 4 when a host is stopped or failing, a
heartbeat or repository could not be read, or nothing was found under the
address; 1 when the store could not be read at all; 2 for usage errors.
See docs/monitoring.md.`,
		Example: `  escrow fleet --repo s3:https://s3.example.com/backups
  escrow fleet --repo s3:https://s3.example.com/backups/reseller1 --stale 2h --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.staleSet = cmd.Flags().Changed("stale")
			return runFleet(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&o.Stale, "stale", fleet.DefaultStale, "a host without a heartbeat for this long is silent (default: also three of the host's own heartbeat periods, if longer)")
	f.IntVar(&o.Parallel, "parallel", 32, "requests in flight at once")
	f.IntVar(&o.Depth, "depth", 4, "how many folders deep below --repo repositories are looked for")
	return cmd
}

// fleetStore is a fleet.Store that can also open the repository in one of
// its folders.
type fleetStore interface {
	fleet.Store
	backend(dir string) (remote.Backend, error)
}

type s3Fleet struct{ *s3.Backend }

func (s s3Fleet) backend(dir string) (remote.Backend, error) { return s.Sub(dir), nil }

type localFleet struct{ *local.Tree }

func (l localFleet) backend(dir string) (remote.Backend, error) {
	return local.Open(filepath.Join(l.Location(), filepath.FromSlash(dir)))
}

func runFleet(ctx context.Context, g *globalOptions, o fleetOptions) error {
	if o.Stale <= 0 || o.Parallel <= 0 || o.Depth < 0 {
		return usageError(errors.New("--stale, --parallel and --depth must be positive"))
	}
	addr, err := g.repoAddress()
	if err != nil {
		return err
	}
	st, err := openFleetStore(ctx, g, addr)
	if err != nil {
		return err
	}
	opts := fleet.Options{Parallel: o.Parallel, MaxDepth: o.Depth, Retry: g.retryOptions()}
	if o.staleSet {
		opts.Stale = o.Stale
	}
	if o.Depth == 0 {
		opts.MaxDepth = -1 // fleet.Options' zero means the default
	}
	if password, ok, err := fleetPassword(g); err != nil {
		return err
	} else if ok {
		opts.Snapshots = func(ctx context.Context, dir string) ([]*repo.Snapshot, error) {
			be, err := st.backend(dir)
			if err != nil {
				return nil, err
			}
			defer be.Close()
			r, err := repo.Open(ctx, remote.WithRetry(be, g.retryOptions()), password, g.repoOptions())
			if err != nil {
				return nil, err
			}
			defer r.Close()
			return r.Snapshots(ctx)
		}
	}
	rep, err := fleet.Scan(ctx, st, opts)
	if err != nil {
		return err
	}
	if g.JSON {
		if err := printJSON(g, rep); err != nil {
			return err
		}
	} else {
		printFleet(g, rep, opts.Snapshots != nil)
	}
	switch {
	case rep.Silent > 0:
		return withCode(exitSilent, fmt.Errorf("%d of %d hosts silent for more than %s", rep.Silent, len(rep.Hosts), rep.Stale))
	case rep.Unhealthy():
		return withCode(exitUnhealthy, fmt.Errorf("%d hosts stopped, %d failing, %d read problems", rep.Stopped, rep.Failing, len(rep.Problems)))
	}
	return nil
}

// fleetPassword returns the repository password when one was given
// without asking: the fleet view must run unattended.
func fleetPassword(g *globalOptions) (string, bool, error) {
	if g.PasswordFile == "" && g.env.getenv("ESCROW_PASSWORD_FILE") == "" && g.env.getenv("ESCROW_PASSWORD") == "" && g.Kit == "" {
		return "", false, nil
	}
	p, err := g.password(false)
	return p, err == nil, err
}

func openFleetStore(ctx context.Context, g *globalOptions, addr string) (fleetStore, error) {
	if !strings.HasPrefix(addr, "s3:") {
		if strings.Contains(addr, ":") && !strings.HasPrefix(addr, "local:") && !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, ".") {
			return nil, usageError(fmt.Errorf("address %q: use a directory path or s3:https://HOST/BUCKET[/PREFIX]", addr))
		}
		t, err := local.OpenTree(strings.TrimPrefix(addr, "local:"))
		if err != nil {
			return nil, err
		}
		return localFleet{t}, nil
	}
	cfg, err := g.s3Config(addr)
	if err != nil {
		return nil, usageError(err)
	}
	if cfg.KeyID == "" || cfg.Secret == "" {
		return nil, usageError(fmt.Errorf("no S3 credentials for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (read access suffices)", cfg.Location()))
	}
	var be *s3.Backend
	err = remote.Retry(ctx, g.retryOptions(), cfg.Location(), "connect", func() (err error) {
		be, err = s3.Open(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s3Fleet{be}, nil
}

func printFleet(g *globalOptions, rep *fleet.Report, withSnapshots bool) {
	now := rep.Time
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return formatAge(now.Sub(t)) + " ago"
	}
	tw := tabwriter.NewWriter(g.env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tSTATE\tHEARTBEAT\tLAST GOOD BACKUP\tTAMPER-PROOF\tKIT\tVERSION\tFOLDER")
	for _, h := range rep.Hosts {
		beat, tamper, kitOK, version := "none", "unknown", "unknown", "-"
		var good []string
		if hb := h.Heartbeat; hb != nil {
			beat, version = ago(hb.Time), hb.Version
			kitOK = map[bool]string{true: "confirmed", false: "NOT CONFIRMED"}[hb.KitConfirmed]
			if hb.Escrow != nil {
				tamper = map[bool]string{true: "yes", false: "NO"}[hb.Escrow.TamperProof]
			}
			for _, it := range append(append([]heartbeat.Item(nil), hb.Sources...), hb.Databases...) {
				good = append(good, it.Name+" "+ago(it.LastGood))
			}
		}
		if len(good) == 0 {
			good = []string{"-"}
		}
		dir := h.Dir
		if dir == "" {
			dir = "."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, strings.ToUpper(h.State), beat, good[0], tamper, kitOK, version, dir)
		for _, more := range good[1:] {
			fmt.Fprintf(tw, "\t\t\t%s\t\t\t\t\n", more)
		}
	}
	tw.Flush()
	for _, h := range rep.Hosts {
		if len(h.Problems) == 0 && (!withSnapshots || len(h.Latest) == 0) {
			continue
		}
		g.printf("\n%s (%s):\n", h.Name, h.State)
		for _, p := range h.Problems {
			g.printf("  %s\n", p)
		}
		for _, l := range h.Latest {
			g.printf("  newest snapshot of %s: %s, %s\n", strings.Join(l.Paths, " "), l.ID, ago(l.Time))
		}
	}
	for _, p := range rep.Problems {
		g.printf("\nproblem: %s\n", p)
	}
	for _, d := range rep.Truncated {
		g.printf("\nnot searched (deeper than --depth): %s\n", d)
	}
	g.printf("\n%d hosts: %d ok, %d failing, %d stopped, %d silent (no heartbeat for %s); %d repositories\n",
		len(rep.Hosts), rep.OK, rep.Failing, rep.Stopped, rep.Silent, rep.Stale, len(rep.Repositories))
}

package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/prune"
	"github.com/escrow-backup/escrow/repo"
)

// pruneOptions are the flags of prune, also taken by forget --prune.
type pruneOptions struct {
	MaxUnused   string
	RepackSmall bool
	Grace       time.Duration
	Force       bool
	LockWait    time.Duration
}

func (o *pruneOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.MaxUnused, "max-unused", "5%", "leave up to this much unused data in partly used packs, as a percentage of the used data (e.g. 5%, 0%), or 'unlimited' to repack nothing")
	f.BoolVar(&o.RepackSmall, "repack-small", false, "also merge packs smaller than 80% of the target pack size")
	f.DurationVar(&o.Grace, "grace", prune.DefaultGrace, "keep packs no index lists yet (a backup in progress may be writing them) until they are this old")
	f.DurationVar(&o.LockWait, "lock-wait", prune.DefaultLockWait, "wait this long for backups in progress (and running agents) to give way to the exclusive lock")
	f.BoolVar(&o.Force, "force", false, "prune even though objects vanished from the store since the last forget/prune (check the bucket first)")
}

func (o *pruneOptions) options(g *globalOptions, dryRun bool) (prune.Options, error) {
	var maxUnused float64
	switch s := strings.TrimSpace(o.MaxUnused); s {
	case "unlimited":
		maxUnused = 100
	default:
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || !(v >= 0 && v <= 100) {
			return prune.Options{}, usageError(fmt.Errorf("--max-unused %q: give a percentage from 0%% to 100%%, such as 5%%, or 'unlimited'", o.MaxUnused))
		}
		maxUnused = v
	}
	if o.Grace < 0 {
		return prune.Options{}, usageError(fmt.Errorf("--grace %s: must not be negative", o.Grace))
	}
	dir, err := prune.DefaultStateDir()
	if err != nil {
		return prune.Options{}, err
	}
	return prune.Options{MaxUnused: maxUnused, RepackSmall: o.RepackSmall, Grace: o.Grace, Force: o.Force,
		LockWait: o.LockWait, DryRun: dryRun, StateDir: dir, Logger: g.logger()}, nil
}

func newPruneCommand(g *globalOptions) *cobra.Command {
	o := &pruneOptions{}
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove data no snapshot needs (owner only, off the host)",
		Long: `prune deletes the packs no snapshot needs any more and rewrites partly used
ones, restic-style. Run it from the owner's machine with credentials that may
delete, never on the web server: the host's credentials cannot delete, by
design. It takes the exclusive repository lock, never deletes anything under
Object Lock retention, keeps packs a backup in progress may still be writing
(--grace), and refuses when objects vanished from the store since its last
run without escrow removing them (--force overrides). See docs/retention.md.`,
		Example: "  escrow prune --dry-run\n  escrow prune --max-unused 10%",
		Args:    exactArgs(0),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, _ []string) error {
			opts, err := o.options(g, dryRun)
			if err != nil {
				return err
			}
			return runPrune(cmd.Context(), g, r, opts)
		}),
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "print the plan, change nothing")
	o.AddFlags(cmd.Flags())
	return cmd
}

func runPrune(ctx context.Context, g *globalOptions, r *repo.Repository, opts prune.Options) error {
	res, err := prune.Run(ctx, r, opts)
	if res != nil && g.JSON {
		if jerr := printJSON(g, res); jerr != nil && err == nil {
			err = jerr
		}
	} else if res != nil {
		printPrune(g, res, opts.Grace)
	}
	return err
}

func printPrune(g *globalOptions, res *prune.Result, grace time.Duration) {
	b := func(n int64) string { return formatBytes(uint64(max(n, 0))) }
	g.printf("%d snapshots, %d packs (%s) stored\n", res.Snapshots, res.Before.N, b(res.Before.Bytes))
	g.printf("used:       %d blobs, %s\n", res.Used.N, b(res.Used.Bytes))
	g.printf("keep:       %d packs, %s\n", res.Keep.N, b(res.Keep.Bytes))
	g.printf("remove:     %d unused packs, %s\n", res.Remove.N, b(res.Remove.Bytes))
	g.printf("repack:     %d partly used packs, %s (copying %d used blobs, %s)\n", res.Repack.N, b(res.Repack.Bytes), res.Repacked.N, b(res.Repacked.Bytes))
	if res.Orphans.N > 0 {
		g.printf("orphans:    %d packs no index lists, older than %s, %s: remove\n", res.Orphans.N, grace, b(res.Orphans.Bytes))
	}
	if res.Young.N > 0 {
		g.printf("young:      %d packs no index lists, younger than %s, %s: kept (a backup may still be writing them)\n", res.Young.N, grace, b(res.Young.Bytes))
	}
	if res.Protected.N > 0 {
		g.printf("protected:  %d packs (%s) protected until %s; prune will remove them after that\n",
			res.Protected.N, b(res.Protected.Bytes), res.ProtectedUntil.UTC().Format(time.RFC3339))
	}
	if res.IndexRetained > 0 {
		g.printf("index:      %d index files are under retention and stay, with the packs they list\n", res.IndexRetained)
	}
	g.printf("after:      about %s stored, %s less\n", b(res.After.Bytes), b(res.Before.Bytes-res.After.Bytes))
	switch {
	case res.FirstRun:
		g.printf("first prune of this repository from here: its listing is recorded to detect objects vanishing before the next run\n")
	}
	if res.DryRun {
		g.printf("dry run: nothing was changed\n")
	} else if res.Remove.N+res.Repack.N+res.Orphans.N == 0 {
		g.printf("nothing to remove\n")
	} else {
		g.printf("done: %d index files replaced by %d\n", res.IndexOld, res.IndexNew)
	}
}

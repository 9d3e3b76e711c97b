package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/forget"
	"github.com/escrow-backup/escrow/prune"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

type forgetOptions struct {
	policy   forget.Policy
	keepTags []string
	groupBy  string
	filter   snapshotFilterOptions
	dryRun   bool
	prune    bool
	pruneOpt pruneOptions
}

func newForgetCommand(g *globalOptions) *cobra.Command {
	o := &forgetOptions{}
	cmd := &cobra.Command{
		Use:   "forget [flags] [snapshot ID...]",
		Short: "Remove snapshots by a retention policy, as restic does (owner only)",
		Long: `forget removes snapshots that a retention policy does not keep, with
restic's --keep-* rules and results, or the snapshots named as arguments.
Snapshots are grouped (by host and paths unless --group-by says otherwise)
and the policy applies to each group. Snapshots tagged pre-deletion are always
kept by a policy. On an Object Lock bucket a snapshot still under retention
is shown as "protected until" and left alone; a later forget removes it.
forget removes only snapshot files: prune (or --prune) frees the data.
See docs/retention.md.`,
		Example: "  escrow forget --keep-hourly 24 --keep-daily 14 --keep-weekly 8 --keep-monthly 12 --prune\n  escrow forget --keep-within 30d --dry-run\n  escrow forget 4f2a9c1e",
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, args []string) error {
			return runForget(cmd.Context(), g, o, r, args)
		}),
	}
	f := cmd.Flags()
	p := &o.policy
	f.IntVar(&p.Last, "keep-last", 0, "keep the last n snapshots")
	f.IntVar(&p.Hourly, "keep-hourly", 0, "keep the last n hourly snapshots")
	f.IntVar(&p.Daily, "keep-daily", 0, "keep the last n daily snapshots")
	f.IntVar(&p.Weekly, "keep-weekly", 0, "keep the last n weekly snapshots")
	f.IntVar(&p.Monthly, "keep-monthly", 0, "keep the last n monthly snapshots")
	f.IntVar(&p.Yearly, "keep-yearly", 0, "keep the last n yearly snapshots")
	f.Var(&p.Within, "keep-within", "keep snapshots newer than this (e.g. 1y5m7d2h) before the group's newest")
	f.Var(&p.WithinHourly, "keep-within-hourly", "keep hourly snapshots within this duration of the newest")
	f.Var(&p.WithinDaily, "keep-within-daily", "keep daily snapshots within this duration of the newest")
	f.Var(&p.WithinWeekly, "keep-within-weekly", "keep weekly snapshots within this duration of the newest")
	f.Var(&p.WithinMonthly, "keep-within-monthly", "keep monthly snapshots within this duration of the newest")
	f.Var(&p.WithinYearly, "keep-within-yearly", "keep yearly snapshots within this duration of the newest")
	f.StringArrayVar(&o.keepTags, "keep-tag", nil, "keep snapshots with all these tags, given as tag[,tag...] (repeatable)")
	f.StringVarP(&o.groupBy, "group-by", "g", "host,paths", "group snapshots by host, paths and/or tags, separated by commas ('' for one group)")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "print what would be removed, remove nothing")
	f.BoolVar(&o.prune, "prune", false, "run prune afterwards if snapshots were removed")
	o.filter.AddFlags(f)
	o.pruneOpt.AddFlags(f)
	return cmd
}

// forgetGroupJSON is one group in --json output, shaped like restic's.
type forgetGroupJSON struct {
	forget.Group
	Keep    []forgetSnapJSON `json:"keep"`
	Remove  []forgetSnapJSON `json:"remove"`
	Reasons []struct {
		ID      string   `json:"id"`
		Matches []string `json:"matches"`
	} `json:"reasons"`
}

type forgetSnapJSON struct {
	snapshotJSON
	ProtectedUntil *time.Time `json:"protected_until,omitempty"`
}

func runForget(ctx context.Context, g *globalOptions, o *forgetOptions, r *repo.Repository, args []string) error {
	for _, s := range o.keepTags {
		o.policy.Tags = append(o.policy.Tags, strings.Split(s, ","))
	}
	by, err := forget.ParseGroupBy(o.groupBy)
	if err != nil {
		return usageError(err)
	}
	if len(args) > 0 && !o.policy.Empty() {
		return usageError(errors.New("give snapshot IDs or --keep-* rules, not both"))
	}
	if len(args) == 0 && o.policy.Empty() {
		return usageError(errors.New("no policy given: add --keep-* rules (e.g. --keep-daily 14) or name snapshots to remove; an empty policy would keep everything"))
	}
	var pruneOpts prune.Options
	if o.prune {
		if pruneOpts, err = o.pruneOpt.options(g, o.dryRun); err != nil {
			return err
		}
	}
	stateDir, err := prune.DefaultStateDir()
	if err != nil {
		return err
	}
	held, err := prune.Lock(ctx, r, !o.dryRun, o.pruneOpt.LockWait, g.logger())
	if err != nil {
		return err
	}
	unlock := func() {
		if held != nil {
			if err := held.Unlock(ctx); err != nil {
				g.logger().Warn("could not release the repository lock", "err", err)
			}
			held = nil
		}
	}
	defer unlock()

	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	ret := prune.RetentionOf(r.Backend())
	now := time.Now()
	protectedUntil := func(sn *repo.Snapshot) (*time.Time, error) {
		if ret == nil {
			return nil, nil
		}
		until, _, err := ret.RetainUntil(ctx, remote.Handle{Type: remote.SnapshotFile, Name: sn.ID.String()})
		if err != nil || !until.After(now) {
			return nil, err
		}
		return &until, nil
	}

	var remove []*repo.Snapshot
	var groups []forgetGroupJSON
	if len(args) > 0 {
		for _, a := range args {
			sn, err := repo.FindSnapshot(snaps, a, repo.SnapshotFilter{})
			if err != nil {
				return err
			}
			remove = append(remove, sn)
		}
		gj := forgetGroupJSON{}
		for _, sn := range remove {
			pu, err := protectedUntil(sn)
			if err != nil {
				return err
			}
			gj.Remove = append(gj.Remove, forgetSnapJSON{snapshotsJSON([]*repo.Snapshot{sn})[0], pu})
		}
		groups = append(groups, gj)
	} else {
		flt := o.filter.filter()
		var list []*repo.Snapshot
		for _, sn := range snaps {
			if flt.Match(sn) {
				list = append(list, sn)
			}
		}
		for _, grp := range forget.Groups(list, by) {
			gj := forgetGroupJSON{Group: *grp, Keep: []forgetSnapJSON{}, Remove: []forgetSnapJSON{}}
			for _, d := range o.policy.Apply(grp.Snapshots) {
				pu, err := protectedUntil(d.Snapshot)
				if err != nil {
					return err
				}
				sj := forgetSnapJSON{snapshotsJSON([]*repo.Snapshot{d.Snapshot})[0], pu}
				if d.Keep {
					gj.Keep = append(gj.Keep, sj)
					gj.Reasons = append(gj.Reasons, struct {
						ID      string   `json:"id"`
						Matches []string `json:"matches"`
					}{d.Snapshot.ID.String(), d.Reasons})
				} else {
					gj.Remove = append(gj.Remove, sj)
					remove = append(remove, d.Snapshot)
				}
			}
			groups = append(groups, gj)
		}
	}
	if !g.JSON {
		printForget(g, groups, len(args) > 0)
	}

	var done *prune.Forgotten
	if !o.dryRun && len(remove) > 0 {
		ids := make([]repo.ID, len(remove))
		for i, sn := range remove {
			ids[i] = sn.ID
		}
		done, err = prune.RemoveSnapshots(ctx, r, ids, ret, stateDir, now)
		if done != nil && !g.JSON {
			g.printf("removed %d snapshots\n", len(done.Removed))
			for id, until := range done.Protected {
				g.printf("snapshot %s is protected until %s (Object Lock retention): it stays, and forget removes it after that\n", id.Str(), until.UTC().Format(time.RFC3339))
			}
		}
		if err != nil {
			return err
		}
	} else if o.dryRun && !g.JSON {
		g.printf("dry run: would remove %d snapshots\n", len(remove))
	}
	if g.JSON {
		if err := printJSON(g, groups); err != nil {
			return err
		}
	}
	if o.prune && !o.dryRun && done != nil && len(done.Removed) > 0 {
		unlock() // prune takes its own exclusive lock
		if !g.JSON {
			g.printf("\npruning\n")
		}
		return runPrune(ctx, g, r, pruneOpts)
	}
	return nil
}

func printForget(g *globalOptions, groups []forgetGroupJSON, byID bool) {
	for _, gr := range groups {
		if !byID {
			var key []string
			if gr.Host != "" {
				key = append(key, "host "+gr.Host)
			}
			if len(gr.Paths) > 0 {
				key = append(key, "paths "+strings.Join(gr.Paths, " "))
			}
			if len(gr.Tags) > 0 {
				key = append(key, "tags "+strings.Join(gr.Tags, ","))
			}
			if len(key) == 0 {
				key = append(key, "all snapshots")
			}
			g.printf("snapshots of %s:\n", strings.Join(key, ", "))
		}
		reasons := map[string][]string{}
		for _, r := range gr.Reasons {
			reasons[r.ID] = r.Matches
		}
		table := func(title string, list []forgetSnapJSON) {
			if len(list) == 0 {
				return
			}
			g.printf("%s %d snapshots:\n", title, len(list))
			w := tabwriter.NewWriter(g.env.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTime\tHost\tTags\tReasons\tProtection")
			for _, s := range list {
				prot := ""
				if s.ProtectedUntil != nil {
					prot = "protected until " + s.ProtectedUntil.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ShortID, s.Time.Local().Format("2006-01-02 15:04:05"), s.Host,
					strings.Join(s.Tags, ","), strings.Join(reasons[s.ID], ", "), prot)
			}
			if !g.Quiet {
				_ = w.Flush()
			}
		}
		table("keep", gr.Keep)
		table("remove", gr.Remove)
		g.printf("\n")
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

func newRecoverCommand(g *globalOptions) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "recover --as-of TIME",
		Short: "Make the bucket's current files equal what they were at a past time (owner credentials)",
		Long: `After an attack or a mistake (objects overwritten, marked deleted, bogus
snapshots added), make the repository's current view equal its view at TIME,
so that every tool, restic included, sees that state again.

Each file whose current version differs from its version at TIME gets that
version copied on top (a copy inside the store); each file that did not exist
at TIME gets a delete marker. No version is removed: what was there stays as
an older version. It needs an S3 bucket with versioning and credentials that
may list versions, copy objects and put delete markers — the owner's, not
the host's. Lock files are left alone.

It first opens the repository as of TIME with the password, so it never
makes the bucket look like something that is not this repository. Running it
again finishes an interrupted recovery and changes nothing once done.`,
		Example: `  escrow recover --as-of "2026-11-20T10:00:00Z" --dry-run
  escrow recover --as-of "3 hours ago"`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRecover(cmd.Context(), g, dryRun)
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only show what would change")
	return cmd
}

func runRecover(ctx context.Context, g *globalOptions, dryRun bool) error {
	at, err := g.asOfTime()
	if err != nil {
		return err
	}
	if at.IsZero() {
		return usageError(errors.New(`recover needs --as-of TIME: the time whose state to bring back (e.g. --as-of "2026-11-20T10:00:00Z"); see escrow snapshots --as-of TIME first`))
	}
	addr, err := g.repoAddress()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(addr, "s3:") {
		return usageError(fmt.Errorf("recover needs an s3: repository in a bucket with versioning; %s keeps no older versions", addr))
	}
	cfg, err := g.s3Config(addr)
	if err != nil {
		return usageError(err)
	}
	ro := g.retryOptions()
	var b *s3.Backend
	err = remote.Retry(ctx, ro, cfg.Location(), "connect", func() error {
		var err error
		b, err = s3.Open(ctx, cfg)
		return err
	})
	if err != nil {
		return err
	}
	defer b.Close()

	snaps, err := snapshotsAt(ctx, g, b, at)
	if err != nil {
		return err
	}
	plan, err := b.PlanRecover(ctx, at)
	if err != nil {
		return err
	}
	if g.JSON && dryRun {
		return printJSON(g, recoverJSON(plan, len(snaps), false))
	}
	if !g.JSON {
		printRecoverPlan(g, b.Location(), plan, len(snaps))
	}
	if dryRun {
		g.printf("dry run: nothing was changed\n")
		return nil
	}
	log := g.logger()
	done := 0
	err = b.ApplyRecover(ctx, plan, func(s s3.RecoverStep) {
		done++
		log.Info("recovered", "action", string(s.Action), "key", s.Key, "version", s.VersionID, "step", done, "of", len(plan.Steps))
	})
	if err != nil {
		return fmt.Errorf("%w (%d of %d changes were made)", err, done, len(plan.Steps))
	}
	if g.JSON {
		return printJSON(g, recoverJSON(plan, len(snaps), true))
	}
	g.printf("recovered: %d files restored, %d hidden; the repository now reads as it did at %s\n",
		countSteps(plan, s3.RecoverRestore), countSteps(plan, s3.RecoverHide), at.Format(time.RFC3339))
	return nil
}

// snapshotsAt opens the repository as of at with the password and lists its
// snapshots: proof that the state to bring back is this repository and
// readable, before anything changes.
func snapshotsAt(ctx context.Context, g *globalOptions, b *s3.Backend, at time.Time) ([]*repo.Snapshot, error) {
	view, err := b.AsOf(ctx, at)
	if err != nil {
		return nil, err
	}
	password, err := g.password(false)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, remote.WithRetry(view, g.retryOptions()), password, g.repoOptions())
	if err != nil {
		return nil, fmt.Errorf("the repository as of %s does not open, so recover would not bring back a usable state (choose another --as-of time; escrow snapshots --as-of TIME shows what a time holds): %w", at.Format(time.RFC3339), err)
	}
	defer r.Close()
	return r.Snapshots(ctx)
}

func countSteps(p *s3.RecoverPlan, a s3.RecoverAction) int {
	n := 0
	for _, s := range p.Steps {
		if s.Action == a {
			n++
		}
	}
	return n
}

var recoverFolders = []remote.FileType{remote.ConfigFile, remote.KeyFile, remote.SnapshotFile, remote.IndexFile, remote.PackFile}

func printRecoverPlan(g *globalOptions, location string, p *s3.RecoverPlan, snaps int) {
	g.printf("recover %s to its state at %s (%d snapshots then)\n", location, p.At.Format(time.RFC3339), snaps)
	if g.Quiet {
		return
	}
	w := tabwriter.NewWriter(g.env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "folder\trestore\thide\tunchanged")
	for _, t := range recoverFolders {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\n", t, p.Count(t, s3.RecoverRestore), p.Count(t, s3.RecoverHide), p.Unchanged[t])
	}
	_ = w.Flush()
}

type recoverFolderJSON struct {
	Restore   int `json:"restore"`
	Hide      int `json:"hide"`
	Unchanged int `json:"unchanged"`
}

func recoverJSON(p *s3.RecoverPlan, snaps int, applied bool) map[string]any {
	folders := map[string]recoverFolderJSON{}
	for _, t := range recoverFolders {
		folders[string(t)] = recoverFolderJSON{p.Count(t, s3.RecoverRestore), p.Count(t, s3.RecoverHide), p.Unchanged[t]}
	}
	return map[string]any{"as_of": p.At, "snapshots": snaps, "applied": applied, "changes": len(p.Steps), "folders": folders}
}

package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/restore"
)

type restoreOptions struct {
	Target   string
	Includes []string
	Verify   bool
}

func newRestoreCommand(g *globalOptions) *cobra.Command {
	o := &restoreOptions{}
	f := &snapshotFilterOptions{}
	cmd := &cobra.Command{
		Use:   "restore SNAPSHOT --target DIR",
		Short: "Restore a snapshot's files",
		Long: `Restore a snapshot (or the paths given with --include) below DIR. Files
already correct at the target are skipped, so an interrupted restore can
simply be run again.`,
		Example: `  escrow restore latest --target /tmp/restored
  escrow restore latest --target / --include /var/www/site/wp-config.php --verify`,
		Args: exactArgs(1),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, args []string) error {
			ctx := cmd.Context()
			if o.Target == "" {
				return usageError(errors.New("--target is required: the directory to restore into"))
			}
			sn, err := g.snapshotForReading(ctx, r, args[0], f.filter())
			if err != nil {
				return err
			}
			opts := restore.Options{Target: o.Target, Include: o.Includes, Verify: o.Verify, Logger: g.logger()}
			bar := newProgressBar(g, "restoring")
			if bar != nil {
				opts.Progress = func(p restore.Progress) {
					bar.ChangeMax64(int64(p.BytesTotal))
					_ = bar.Set64(int64(p.BytesDone))
				}
			}
			start := time.Now()
			res, err := restore.Run(ctx, r, sn, opts)
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(g.env.stderr)
			}
			if res != nil {
				printRestoreSummary(g, sn, res, time.Since(start))
			}
			if err != nil {
				return fmt.Errorf("restore of snapshot %s: %w", sn.ID.Str(), err)
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&o.Target, "target", "t", "", "directory to restore into")
	cmd.Flags().StringArrayVarP(&o.Includes, "include", "i", nil, "restore only this path of the snapshot (repeatable)")
	cmd.Flags().BoolVar(&o.Verify, "verify", false, "read back every restored file and check it against the snapshot")
	f.AddFlags(cmd.Flags())
	return cmd
}

func printRestoreSummary(g *globalOptions, sn *repo.Snapshot, res *restore.Result, d time.Duration) {
	if g.JSON {
		errs := make([]string, 0, len(res.Errors))
		for _, e := range res.Errors {
			errs = append(errs, e.Error())
		}
		_ = printJSON(g, map[string]any{"snapshot_id": sn.ID.String(), "files": res.Files, "dirs": res.Dirs,
			"symlinks": res.Symlinks, "hardlinks": res.Hardlinks, "skipped": res.Skipped, "bytes": res.Bytes,
			"verified": res.Verified, "errors": errs, "duration_seconds": d.Seconds()})
		return
	}
	for _, e := range res.Errors {
		fmt.Fprintln(g.env.stderr, e)
	}
	g.printf("restored %d files (%s), %d dirs, %d links from snapshot %s in %s", res.Files, formatBytes(res.Bytes),
		res.Dirs, res.Symlinks+res.Hardlinks, sn.ID.Str(), formatDuration(d))
	if res.Skipped > 0 {
		g.printf("; %d files were already correct", res.Skipped)
	}
	g.printf("\n")
	if res.Verified > 0 {
		g.printf("verified %d files against the snapshot\n", res.Verified)
	}
}

// newProgressBar returns a byte progress bar on a terminal, nil otherwise
// (logs and pipes get the summary only).
func newProgressBar(g *globalOptions, what string) *progressbar.ProgressBar {
	f, ok := g.env.stderr.(*os.File)
	if g.Quiet || g.JSON || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionShowCount(),
	)
}

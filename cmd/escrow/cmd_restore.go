package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/progress"
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
			rp, err := g.newProgress(progress.Options{Action: "restore", Names: restoreNames()})
			if err != nil {
				return err
			}
			if rp != nil {
				var hint *repo.Summary
				if len(o.Includes) == 0 {
					hint = sn.Summary
				}
				opts.Progress = func(p restore.Progress) {
					files, bytes := restoreTotals(p, hint)
					rp.Total(files, bytes, p.Counted)
					rp.Done(uint64(p.FilesDone), p.BytesDone)
				}
			}
			start := time.Now()
			res, err := restore.Run(ctx, r, sn, opts)
			if err == nil {
				rp.Finish()
			} else {
				rp.Abort()
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
		// restic's restore summary fields first, then escrow's.
		_ = printJSONLine(g, map[string]any{"message_type": "summary", "seconds_elapsed": uint64(d.Seconds()),
			"total_files": res.Files + res.Skipped, "files_restored": res.Files, "files_skipped": res.Skipped,
			"bytes_restored": res.Bytes,
			"snapshot_id":    sn.ID.String(), "files": res.Files, "dirs": res.Dirs,
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

// restoreNames are the counters' names in `restic restore --json` status
// messages.
func restoreNames() progress.Names {
	return progress.Names{FilesDone: "files_restored", TotalFiles: "total_files", BytesDone: "bytes_restored", TotalBytes: "total_bytes"}
}

// restoreTotals are the totals a restore's progress shows. The restore
// counts them as it walks, only a few batches ahead of what is written, so
// until the walk ends they say little; the snapshot's summary, when the
// backup wrote one and the whole snapshot is restored (hint), gives them
// from the start.
func restoreTotals(p restore.Progress, hint *repo.Summary) (files, bytes uint64) {
	files, bytes = uint64(p.FilesTotal), p.BytesTotal
	if hint != nil && !p.Counted {
		files, bytes = max(files, hint.TotalFilesProcessed), max(bytes, hint.TotalBytesProcessed)
	}
	return files, bytes
}

package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/check"
	"github.com/escrow-backup/escrow/progress"
	"github.com/escrow-backup/escrow/repo"
)

// errDamaged is returned when check finds damage; the details are printed.
var errDamaged = errors.New("the repository is damaged")

func newCheckCommand(g *globalOptions) *cobra.Command {
	var readData bool
	var subset string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository's structure and, with --read-data, every byte",
		Long: `Verify that every indexed pack exists with the right size and that every tree
and data blob a snapshot needs is indexed. With --read-data, also download
every pack (or a subset), check its hash, and decrypt and hash every blob.
Each damaged pack is reported with the files and snapshots it affects.

Exit status: 0 when no damage was found, 1 otherwise.`,
		Example: "  escrow check\n  escrow check --read-data\n  escrow check --read-data-subset 10%\n  escrow check --read-data-subset 2/7",
		Args:    exactArgs(0),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, _ []string) error {
			opts := check.Options{ReadData: readData, Logger: g.logger()}
			if subset != "" {
				if err := opts.SetSubset(subset); err != nil {
					return usageError(err)
				}
			}
			// Progress counts the packs read for --read-data, the long part;
			// the stages before it only name themselves on the bar. A log
			// or a program gets progress only when data is read.
			var rp *progress.Reporter
			if readData || subset != "" || (!g.JSON && isTerminal(g.env.stderr)) {
				var err error
				if rp, err = g.newProgress(progress.Options{Action: "check", Unit: "packs", Names: checkNames()}); err != nil {
					return err
				}
			}
			if rp != nil {
				opts.Progress = func(stage string, _, _ int) { rp.SetAction("check " + stage) }
				opts.ReadProgress = func(p check.ReadProgress) {
					rp.Total(uint64(p.PacksTotal), p.BytesTotal, true)
					rp.Done(uint64(p.PacksDone), p.BytesDone)
				}
			}
			rep, err := check.Run(cmd.Context(), r, opts)
			if err != nil {
				rp.Abort()
				return err
			}
			rp.Finish()
			printCheckReport(g, rep)
			if !rep.OK() {
				return fmt.Errorf("%w: %d problems found (listed above)", errDamaged, len(rep.Problems))
			}
			return nil
		}),
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and verify all data")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "read and verify a subset of the packs: N% at random, or part N/M")
	return cmd
}

func printCheckReport(g *globalOptions, rep *check.Report) {
	if g.JSON {
		type affected struct {
			Snapshot string `json:"snapshot"`
			Path     string `json:"path"`
		}
		type problem struct {
			Kind         string     `json:"kind"`
			Pack         string     `json:"pack,omitempty"`
			Blob         string     `json:"blob,omitempty"`
			Error        string     `json:"error"`
			Fix          string     `json:"fix"`
			Affected     []affected `json:"affected,omitempty"`
			MoreAffected int        `json:"more_affected,omitempty"`
		}
		out := struct {
			MessageType string    `json:"message_type"`
			OK          bool      `json:"ok"`
			Snapshots   int       `json:"snapshots"`
			Trees       int       `json:"trees"`
			Packs       int       `json:"packs"`
			PacksRead   int       `json:"packs_read"`
			Blobs       int       `json:"blobs"`
			Orphans     []string  `json:"orphan_packs,omitempty"`
			Problems    []problem `json:"problems"`
		}{MessageType: "summary", OK: rep.OK(), Snapshots: rep.Snapshots, Trees: rep.Trees, Packs: rep.Packs, PacksRead: rep.PacksRead, Blobs: rep.Blobs, Problems: []problem{}}
		for _, o := range rep.Orphans {
			out.Orphans = append(out.Orphans, o.String())
		}
		for _, p := range rep.Problems {
			j := problem{Kind: p.Kind, Error: p.Err.Error(), Fix: p.Fix, MoreAffected: p.MoreAffected}
			if !p.Pack.IsNull() {
				j.Pack = p.Pack.String()
			}
			if !p.Blob.ID.IsNull() {
				j.Blob = p.Blob.ID.String()
			}
			for _, a := range p.Affected {
				j.Affected = append(j.Affected, affected{a.Snapshot.String(), a.Path})
			}
			out.Problems = append(out.Problems, j)
		}
		_ = printJSONLine(g, out)
		return
	}
	for _, p := range rep.Problems {
		fmt.Fprintf(g.env.stdout, "%s\n", p.String())
		for _, a := range p.Affected {
			fmt.Fprintf(g.env.stdout, "  affects %s in snapshot %s\n", a.Path, a.Snapshot.Str())
		}
		if p.MoreAffected > 0 {
			fmt.Fprintf(g.env.stdout, "  and %d more files\n", p.MoreAffected)
		}
	}
	g.printf("checked %d snapshots, %d trees, %d packs", rep.Snapshots, rep.Trees, rep.Packs)
	if rep.PacksRead > 0 {
		g.printf(" (%d read and verified)", rep.PacksRead)
	}
	g.printf("\n")
	if len(rep.Orphans) > 0 {
		g.printf("%d packs are not in any index (left by an interrupted backup); they are harmless and will be removed by prune\n", len(rep.Orphans))
	}
	if rep.OK() {
		g.printf("no errors were found\n")
	}
}

// checkNames name the counters of check's JSON status messages; restic's
// check has none, so they follow backup's with packs for files.
func checkNames() progress.Names {
	return progress.Names{FilesDone: "packs_done", TotalFiles: "total_packs", BytesDone: "bytes_done", TotalBytes: "total_bytes"}
}

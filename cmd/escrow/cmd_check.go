package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/check"
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
			if bar := newProgressBar(g, "checking"); bar != nil {
				opts.Progress = func(stage string, done, total int) {
					bar.Describe(stage)
					bar.ChangeMax(total)
					_ = bar.Set(done)
				}
				defer func() { _ = bar.Finish(); fmt.Fprintln(g.env.stderr) }()
			}
			rep, err := check.Run(cmd.Context(), r, opts)
			if err != nil {
				return err
			}
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
			OK        bool      `json:"ok"`
			Snapshots int       `json:"snapshots"`
			Trees     int       `json:"trees"`
			Packs     int       `json:"packs"`
			PacksRead int       `json:"packs_read"`
			Blobs     int       `json:"blobs"`
			Orphans   []string  `json:"orphan_packs,omitempty"`
			Problems  []problem `json:"problems"`
		}{OK: rep.OK(), Snapshots: rep.Snapshots, Trees: rep.Trees, Packs: rep.Packs, PacksRead: rep.PacksRead, Blobs: rep.Blobs, Problems: []problem{}}
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
		_ = printJSON(g, out)
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

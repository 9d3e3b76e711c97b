package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/restore"
)

func newDumpCommand(g *globalOptions) *cobra.Command {
	f := &snapshotFilterOptions{}
	cmd := &cobra.Command{
		Use:     "dump SNAPSHOT PATH",
		Short:   "Write one file from a snapshot to standard output",
		Example: "  escrow dump latest databases/shop.sql | mysql shop",
		Args:    exactArgs(2),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, args []string) error {
			ctx := cmd.Context()
			sn, err := g.snapshotForReading(ctx, r, args[0], f.filter())
			if err != nil {
				return err
			}
			node, err := r.FindNode(ctx, sn, args[1])
			if err != nil {
				return err
			}
			if node.Type != repo.NodeFile {
				return usageError(fmt.Errorf("%s is a %s in snapshot %s; dump writes a single file (use restore for directories)", args[1], node.Type, sn.ID.Str()))
			}
			return restore.Dump(ctx, r, node, g.env.stdout)
		}),
	}
	f.AddFlags(cmd.Flags())
	return cmd
}

package main

import (
	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/repo"
)

func newUnlockCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Remove lock files that no longer count (owner credentials)",
		Long: `Delete the lock files that no longer protect anything: stale ones (more than
30 minutes old), ones escrow released with a record in escrow/released/, and
ones superseded by a newer file of the same holder; and the release records
of locks that are gone. Lock files that cannot be read are removed too.

The backing-up side never deletes, so locks/ grows by about one file every
5 minutes per running agent until the owner runs this (prune does it too).
escrow itself ignores released locks at once; restic honours every lock
file until it is stale, so run this before running restic's prune.

This deletes objects: run it with the owner's credentials. With the host's
credentials (put, get and list only) it fails and changes nothing.`,
		Example: "  escrow unlock",
		Args:    exactArgs(0),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, _ []string) error {
			n, err := r.RemoveStaleLocks(cmd.Context())
			if g.JSON {
				if perr := printJSON(g, map[string]any{"removed": n}); err == nil {
					err = perr
				}
			} else if n > 0 || err == nil {
				g.printf("removed %d lock files\n", n)
			}
			return err
		}),
	}
}

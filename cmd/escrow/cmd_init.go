package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/repo"
)

func newInitCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new repository at the address given by --repo or $ESCROW_REPOSITORY.
An existing repository is never overwritten.`,
		Example: `  ESCROW_PASSWORD_FILE=/etc/escrow/password escrow init -r s3:https://s3.example.com/backups/site1
  escrow init -r /srv/escrow-repo`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			password, err := g.password(true)
			if err != nil {
				return err
			}
			be, err := g.openBackend(ctx, true)
			if err != nil {
				if errors.Is(err, repo.ErrAlreadyInitialized) {
					return usageError(err)
				}
				return err
			}
			defer be.Close()
			r, err := repo.Init(ctx, be, password, g.repoOptions())
			if err != nil {
				if errors.Is(err, repo.ErrAlreadyInitialized) {
					return usageError(err)
				}
				return fmt.Errorf("create repository at %s: %w", be.Location(), err)
			}
			defer r.Close()
			if g.JSON {
				return printJSON(g, map[string]any{"id": r.Config().ID, "repository": be.Location(), "version": r.Config().Version})
			}
			g.printf("created repository %s at %s\n", r.Config().ID[:10], be.Location())
			g.printf("Keep the password safe: without it the data cannot be read by anyone.\n")
			return nil
		},
	}
}

package main

import (
	"github.com/spf13/cobra"
)

func newRootCommand(e env) *cobra.Command {
	g := &globalOptions{env: e}
	root := &cobra.Command{
		Use:   "escrow",
		Short: "Keep a website's files and databases in storage its host cannot destroy",
		Long: `escrow backs up a site's files and database dumps into independent object
storage (S3-compatible, or a local directory), encrypted with a key only the
owner holds, in a repository restic can also read.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	g.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newInitCommand(g),
		newBackupCommand(g),
		newSnapshotsCommand(g),
		newLsCommand(g),
		newRestoreCommand(g),
		newDumpCommand(g),
		newDBCommand(g),
		newRestoreDBCommand(g),
		newCheckCommand(g),
		newForgetCommand(g), newPruneCommand(g),
		newDemoCommand(g),
		newConfigCommand(g),
		newAgentCommand(g),
		newStatusCommand(g),
		newFleetCommand(g),
		newNotifyCommand(g),
		newKitCommand(g),
		newKeyCommand(g),
		newVersionCommand(g),
		newInstallCommand(g),
		newUninstallCommand(g),
		newStartCommand(g),
		newStopCommand(g),
		newRestartCommand(g),
		newServiceCommand(g),
		newDoctorCommand(g),
		newRecoverCommand(g),
		newSetupCommand(g),
		newUnlockCommand(g),
	)
	return root
}

// exactArgs is cobra.ExactArgs with the usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return usageError(cobra.ExactArgs(n)(cmd, args))
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		return usageError(cobra.RangeArgs(lo, hi)(cmd, args))
	}
}

package main

import (
	"runtime"

	"github.com/spf13/cobra"
)

func newVersionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.JSON {
				return printJSON(g, map[string]string{"version": version, "commit": commit, "date": date, "go": runtime.Version(), "os": runtime.GOOS, "arch": runtime.GOARCH})
			}
			build := ""
			if commit != "" {
				build += "commit " + commit + ", "
			}
			if date != "" {
				build += "built " + date + ", "
			}
			g.printf("escrow %s (%s%s, %s/%s)\n", version, build, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}

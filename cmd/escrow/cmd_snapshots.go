package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/repo"
)

func newSnapshotsCommand(g *globalOptions) *cobra.Command {
	f := &snapshotFilterOptions{}
	cmd := &cobra.Command{
		Use:     "snapshots",
		Short:   "List snapshots",
		Example: "  escrow snapshots\n  escrow snapshots --tag db --json",
		Args:    exactArgs(0),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, _ []string) error {
			snaps, err := r.Snapshots(cmd.Context())
			if err != nil {
				return err
			}
			flt := f.filter()
			var list []*repo.Snapshot
			for _, sn := range snaps {
				if flt.Match(sn) {
					list = append(list, sn)
				}
			}
			if g.JSON {
				return printJSON(g, snapshotsJSON(list))
			}
			w := tabwriter.NewWriter(g.env.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTime\tHost\tTags\tPaths\tSize")
			for _, sn := range list {
				size := ""
				if sn.Summary != nil {
					size = formatBytes(sn.Summary.TotalBytesProcessed)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", sn.ID.Str(), sn.Time.Local().Format("2006-01-02 15:04:05"),
					sn.Hostname, strings.Join(sn.Tags, ","), strings.Join(sn.Paths, " "), size)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			g.printf("%d snapshots\n", len(list))
			return nil
		}),
	}
	f.AddFlags(cmd.Flags())
	return cmd
}

type snapshotJSON struct {
	ID      string        `json:"id"`
	ShortID string        `json:"short_id"`
	Time    time.Time     `json:"time"`
	Tree    string        `json:"tree"`
	Parent  string        `json:"parent,omitempty"`
	Paths   []string      `json:"paths"`
	Host    string        `json:"hostname"`
	User    string        `json:"username,omitempty"`
	Tags    []string      `json:"tags,omitempty"`
	Summary *repo.Summary `json:"summary,omitempty"`
}

func snapshotsJSON(list []*repo.Snapshot) []snapshotJSON {
	out := make([]snapshotJSON, 0, len(list))
	for _, sn := range list {
		j := snapshotJSON{ID: sn.ID.String(), ShortID: sn.ID.Str(), Time: sn.Time, Tree: sn.Tree.String(),
			Paths: sn.Paths, Host: sn.Hostname, User: sn.Username, Tags: sn.Tags, Summary: sn.Summary}
		if sn.Parent != nil {
			j.Parent = sn.Parent.String()
		}
		out = append(out, j)
	}
	return out
}

package main

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/repo"
)

func newLsCommand(g *globalOptions) *cobra.Command {
	f := &snapshotFilterOptions{}
	var long bool
	cmd := &cobra.Command{
		Use:     "ls SNAPSHOT [PATH]",
		Short:   "List the files in a snapshot, below PATH if given",
		Example: "  escrow ls latest /var/www/site/wp-content\n  escrow ls 1a2b3c4d -l",
		Args:    rangeArgs(1, 2),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, args []string) error {
			ctx := cmd.Context()
			sn, err := g.snapshotForReading(ctx, r, args[0], f.filter())
			if err != nil {
				return err
			}
			dir := "/"
			if len(args) == 2 {
				dir = path.Clean("/" + args[1])
			}
			node, err := r.FindNode(ctx, sn, dir)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(g.env.stdout)
			print := func(p string, n *repo.Node) error {
				switch {
				case g.JSON:
					return enc.Encode(lsEntry{Path: p, Type: n.Type, Mode: uint32(n.Mode), Size: n.Size, MTime: n.ModTime,
						UID: n.UID, GID: n.GID, User: n.User, Group: n.Group, LinkTarget: n.Target()})
				case long:
					fmt.Fprintf(g.env.stdout, "%s %8s %8s %12d %s %s%s\n", n.Mode, orID(n.User, n.UID), orID(n.Group, n.GID),
						n.Size, n.ModTime.Local().Format("2006-01-02 15:04:05"), p, linkSuffix(n))
				default:
					fmt.Fprintln(g.env.stdout, p)
				}
				return nil
			}
			if node.Type != repo.NodeDir {
				return print(dir, node)
			}
			if dir != "/" {
				if err := print(dir, node); err != nil {
					return err
				}
			}
			return r.Walk(ctx, *node.Subtree, strings.TrimSuffix(dir, "/"), print)
		}),
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "show mode, owner, size and time")
	f.AddFlags(cmd.Flags())
	return cmd
}

type lsEntry struct {
	Path       string    `json:"path"`
	Type       string    `json:"type"`
	Mode       uint32    `json:"mode"`
	Size       uint64    `json:"size"`
	MTime      time.Time `json:"mtime"`
	UID        uint32    `json:"uid"`
	GID        uint32    `json:"gid"`
	User       string    `json:"user,omitempty"`
	Group      string    `json:"group,omitempty"`
	LinkTarget string    `json:"link_target,omitempty"`
}

func orID(name string, id uint32) string {
	if name != "" {
		return name
	}
	return fmt.Sprint(id)
}

func linkSuffix(n *repo.Node) string {
	if n.Type == repo.NodeSymlink {
		return " -> " + n.Target()
	}
	return ""
}

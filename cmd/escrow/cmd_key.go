package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/repo"
)

func newKeyCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "List, add, remove and change the repository's keys (passwords)",
		Long: `Manage the repository's keys as restic does: each key file holds the same
master key under its own password, so the owner's offline password, a
reseller's recovery password and the server's can all open the repository,
and restic's "key" command sees the same keys.

"key list" and "key add" only read and add objects. "key remove" and
"key passwd" delete a key file: they are owner operations, meant to run with
the owner's credentials, since the backing-up server's credentials should
not be allowed to delete anything.`,
	}
	cmd.AddCommand(newKeyListCommand(g), newKeyAddCommand(g), newKeyRemoveCommand(g), newKeyPasswdCommand(g))
	return cmd
}

func newKeyListCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the keys; * marks the one the password opened",
		Args:  exactArgs(0),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, _ []string) error {
			keys, err := r.Keys(cmd.Context())
			if err != nil {
				return err
			}
			if g.JSON {
				out := []map[string]any{}
				for _, k := range keys {
					m := map[string]any{"id": k.ID.String(), "current": k.Current, "username": k.Username,
						"hostname": k.Hostname, "created": k.Created}
					if k.Problem != "" {
						m["problem"] = k.Problem
					}
					out = append(out, m)
				}
				return printJSON(g, out)
			}
			tw := tabwriter.NewWriter(g.env.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, " ID\tUser\tHost\tCreated")
			for _, k := range keys {
				mark := " "
				if k.Current {
					mark = "*"
				}
				if k.Problem != "" {
					fmt.Fprintf(tw, "%s%s\t\t\tdamaged: %s\n", mark, k.ID.Str(), k.Problem)
					continue
				}
				fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\n", mark, k.ID.Str(), k.Username, k.Hostname, k.Created.Local().Format(time.DateTime))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			warnManyKeys(g, len(keys))
			return nil
		}),
	}
}

func warnManyKeys(g *globalOptions, n int) {
	if n > repo.MaxKeysTried {
		fmt.Fprintf(g.env.stderr, "escrow: warning: the repository has %d keys; escrow and restic try only %d when opening it, so some passwords may not open it: remove keys no one uses\n", n, repo.MaxKeysTried)
	}
}

// newKeyOptions describe a new key.
type newKeyOptions struct {
	PasswordFile string
	User, Host   string
}

func (o *newKeyOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.PasswordFile, "new-password-file", "", "read the new password from this file (default: ask on the terminal)")
	f.StringVar(&o.User, "user", "", "user name recorded in the new key (default: yours)")
	f.StringVar(&o.Host, "host", "", "host name recorded in the new key (default: this machine's)")
}

func (o *newKeyOptions) keyOptions() repo.KeyOptions {
	return repo.KeyOptions{Username: o.User, Hostname: o.Host}
}

// newPassword reads the new password from --new-password-file or, on a
// terminal, asks twice; never from the command line. It must differ from
// the one the repository was opened with.
func (o *newKeyOptions) newPassword(g *globalOptions, current string) (string, error) {
	var p string
	if o.PasswordFile != "" {
		var err error
		if p, err = readPasswordFile(o.PasswordFile); err != nil {
			return "", err
		}
	} else {
		f, ok := g.env.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", usageError(errors.New("no new password: give --new-password-file FILE (a password is never taken from the command line)"))
		}
		var err error
		if p, err = prompt(f, g.env.stderr, "enter the new password: "); err != nil {
			return "", err
		}
		again, err := prompt(f, g.env.stderr, "enter the new password again: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", usageError(errors.New("the passwords do not match"))
		}
		if p == "" {
			return "", usageError(errors.New("empty password"))
		}
	}
	if err := repo.CheckNewPassword(p); err != nil {
		return "", usageError(err)
	}
	if p == current {
		return "", usageError(errors.New("the new password is the one the repository was just opened with: choose another"))
	}
	return p, nil
}

func newKeyAddCommand(g *globalOptions) *cobra.Command {
	o := &newKeyOptions{}
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add a key: another password that opens the repository",
		Long: `Add a key file for a new password, holding the same master key: the
repository then opens with either password. The new key is read back and
opened before this reports success. Nothing is deleted, so the server's own
credentials suffice.`,
		Example: `  escrow key add --new-password-file /root/owner-offline.pw --user owner --host offline
  escrow key add --user reseller --host recovery      # asks for the password`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, current, err := g.openRepoPassword(ctx)
			if err != nil {
				return err
			}
			defer closeRepo(r)
			pw, err := o.newPassword(g, current)
			if err != nil {
				return err
			}
			id, err := r.AddKey(ctx, pw, o.keyOptions())
			if err != nil {
				return fmt.Errorf("add key: %w", err)
			}
			if g.JSON {
				return printJSON(g, map[string]any{"id": id.String()})
			}
			g.printf("added key %s: the repository now also opens with the new password\n", id.Str())
			if keys, err := r.Keys(ctx); err == nil {
				warnManyKeys(g, len(keys))
			}
			return nil
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func newKeyRemoveCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a key (never the one in use, never the last)",
		Long: `Remove the key file ID (or a unique prefix of it): its password no longer
opens the repository. The key the password given here opens, and the last
key, are refused. The removal takes an exclusive lock, so two removals can
never leave the repository without a key; it waits up to 5 minutes for
running agents and backups to give way.

This deletes an object: run it with the owner's credentials. The server's
credentials should not be allowed to delete, and then this fails.`,
		Example: `  escrow key list
  escrow key remove 9b1c0d2e`,
		Args: exactArgs(1),
		RunE: withRepo(g, func(cmd *cobra.Command, r *repo.Repository, args []string) error {
			ctx := cmd.Context()
			id, err := r.FindKey(ctx, args[0])
			if err != nil {
				return err
			}
			// Agents hold shared locks all the time and give way to an
			// exclusive one within a minute or so.
			lock, err := r.LockExclusive(ctx, 5*time.Minute)
			if err != nil {
				return err
			}
			defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
			err = r.RemoveKey(ctx, id)
			switch {
			case errors.Is(err, repo.ErrKeyInUse):
				return fmt.Errorf("%w; to remove it, open the repository with another key's password, or replace it with escrow key passwd", err)
			case errors.Is(err, remote.ErrPermanent) && !remote.IsNotFound(err):
				return fmt.Errorf("%w (key remove deletes keys/%s: run it with credentials allowed to delete, the owner's)", err, id.Str())
			case err != nil:
				return err
			}
			if g.JSON {
				return printJSON(g, map[string]any{"removed": id.String()})
			}
			g.printf("removed key %s: its password no longer opens the repository\n", id.Str())
			return nil
		}),
	}
}

func newKeyPasswdCommand(g *globalOptions) *cobra.Command {
	o := &newKeyOptions{}
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password: add a key for the new one, then remove the old",
		Long: `Replace the key the current password opens with one for a new password.
The new key is added and verified first and the old one removed after, so
an interruption leaves both passwords working, never neither.

Removing the old key deletes an object: run this with the owner's
credentials. Afterwards update everything that holds the old password: the
agent's password_file, and the recovery kit (escrow kit, then escrow kit
confirm).`,
		Example: `  escrow key passwd --new-password-file /root/new.pw`,
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			r, current, err := g.openRepoPassword(ctx)
			if err != nil {
				return err
			}
			defer closeRepo(r)
			pw, err := o.newPassword(g, current)
			if err != nil {
				return err
			}
			old := r.KeyID()
			id, err := r.ChangePassword(ctx, pw, o.keyOptions())
			if errors.Is(err, repo.ErrOldKeyKept) {
				return fmt.Errorf("%w. Both passwords open the repository; remove the old key with the owner's credentials: escrow key remove %s", err, old.Str())
			}
			if err != nil {
				return fmt.Errorf("change password: %w", err)
			}
			if g.JSON {
				return printJSON(g, map[string]any{"id": id.String(), "removed": old.String()})
			}
			g.printf("changed the password: key %s replaces %s\n", id.Str(), old.Str())
			g.printf("Update what holds the old password: the agent's password_file, and the recovery kit (escrow kit, then escrow kit confirm).\n")
			return nil
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

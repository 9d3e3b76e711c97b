package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/source"
)

type backupOptions struct {
	Stdin            bool
	StdinFilename    string
	StdinFromCommand bool
	Excludes         []string
	ExcludeFiles     []string
	OneFileSystem    bool
	Tags             []string
	Host             string
	Parent           string
	Force            bool
}

func (o *backupOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Stdin, "stdin", false, "back up standard input as one file")
	f.StringVar(&o.StdinFilename, "stdin-filename", "stdin", "path of the file made from standard input or the command, e.g. databases/shop.sql")
	f.BoolVar(&o.StdinFromCommand, "stdin-from-command", false, "back up the output of the command given after --; no snapshot is saved if it fails")
	f.StringArrayVarP(&o.Excludes, "exclude", "e", nil, "skip paths matching this pattern (repeatable)")
	f.StringArrayVar(&o.ExcludeFiles, "exclude-file", nil, "read exclude patterns from this file (repeatable)")
	f.BoolVarP(&o.OneFileSystem, "one-file-system", "x", false, "do not cross file system boundaries")
	f.StringArrayVar(&o.Tags, "tag", nil, "add this tag to the snapshot (repeatable)")
	f.StringVarP(&o.Host, "host", "H", "", "host name to record (default: this machine's)")
	f.StringVar(&o.Parent, "parent", "", "compare with this snapshot instead of the latest one of the same paths")
	f.BoolVar(&o.Force, "force", false, "read every file again, even if unchanged")
}

func newBackupCommand(g *globalOptions) *cobra.Command {
	o := &backupOptions{}
	cmd := &cobra.Command{
		Use:   "backup [flags] PATH... | --stdin | --stdin-from-command -- COMMAND [ARG...]",
		Short: "Save a snapshot of files, standard input or a command's output",
		Long: `Save a snapshot. Files unchanged since the previous snapshot of the same
paths are not read again.

Exit status: 0 on success; 3 when the snapshot was saved but some files could
not be read (they are listed, and the snapshot is tagged "incomplete"); 1 on
failure, when no snapshot was saved.`,
		Example: `  escrow backup /var/www/site --tag site
  mysqldump shop | escrow backup --stdin --stdin-filename databases/shop.sql
  escrow backup --stdin-from-command --stdin-filename databases/shop.sql -- mysqldump shop`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBackup(cmd, g, o, args)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runBackup(cmd *cobra.Command, g *globalOptions, o *backupOptions, args []string) error {
	ctx := cmd.Context()
	if o.Stdin && o.StdinFromCommand {
		return usageError(errors.New("--stdin and --stdin-from-command cannot be combined"))
	}
	if o.Stdin && len(args) > 0 {
		return usageError(errors.New("--stdin takes no paths"))
	}
	if o.StdinFromCommand && len(args) == 0 {
		return usageError(errors.New("--stdin-from-command needs a command after --"))
	}
	if !o.Stdin && !o.StdinFromCommand && len(args) == 0 {
		return usageError(errors.New("nothing to back up: give one or more paths, --stdin, or --stdin-from-command -- COMMAND"))
	}
	excludes := append([]string(nil), o.Excludes...)
	for _, f := range o.ExcludeFiles {
		pats, err := backup.ReadExcludeFile(f)
		if err != nil {
			return usageError(err)
		}
		excludes = append(excludes, pats...)
	}

	r, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer closeRepo(r)
	lock, err := r.Lock(ctx, false)
	if err != nil {
		return err
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()

	// Snapshots are listed before the index is loaded (read ordering).
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	if err := g.loadIndex(ctx, r); err != nil {
		return err
	}
	opts := backup.Options{
		Excludes: excludes, OneFileSystem: o.OneFileSystem, Tags: o.Tags, Host: o.Host,
		NoParent: o.Force, ProgramVersion: "escrow " + version, Logger: g.logger(),
	}
	var res *backup.Result
	start := time.Now()
	switch {
	case o.Stdin:
		res, err = backup.Stream(ctx, r, g.env.stdin, o.StdinFilename, opts)
	case o.StdinFromCommand:
		res, err = backupCommand(ctx, r, args, o.StdinFilename, opts)
	default:
		opts.Paths = args
		if o.Parent != "" {
			if opts.Parent, err = repo.FindSnapshot(snaps, o.Parent, repo.SnapshotFilter{}); err != nil {
				return usageError(fmt.Errorf("--parent: %w", err))
			}
		} else if !o.Force {
			opts.Parent = findParentFor(snaps, opts.Host, args)
		}
		res, err = backup.Files(ctx, r, opts)
	}
	if err != nil {
		return fmt.Errorf("backup failed, no snapshot saved: %w", err)
	}
	printBackupSummary(g, res, time.Since(start))
	if res.Incomplete() {
		return withCode(exitIncomplete, fmt.Errorf("snapshot %s saved, but %d paths could not be read (listed above); it is tagged %q", res.Snapshot.ID.Str(), len(res.Errors), repo.TagIncomplete))
	}
	return nil
}

// backupCommand streams a command's output; the command's failure fails the
// backup, so a dump that died half-way is never saved as a good snapshot.
func backupCommand(ctx context.Context, r *repo.Repository, argv []string, filename string, opts backup.Options) (*backup.Result, error) {
	c, err := source.StartCommand(ctx, argv, nil)
	if err != nil {
		return nil, err
	}
	res, err := backup.Stream(ctx, r, c, filename, opts)
	cerr := c.Close()
	if err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, cerr
	}
	return res, nil
}

// findParentFor applies the parent rule to the absolute form of the paths.
func findParentFor(snaps []*repo.Snapshot, host string, args []string) *repo.Snapshot {
	abs, err := absPaths(args)
	if err != nil {
		return nil
	}
	if host == "" {
		host = hostname()
	}
	return backup.FindParent(snaps, host, abs)
}

func printBackupSummary(g *globalOptions, res *backup.Result, d time.Duration) {
	s := res.Summary
	if g.JSON {
		_ = printJSON(g, map[string]any{
			"snapshot_id": res.Snapshot.ID.String(), "summary": s, "bytes_read": res.BytesRead,
			"incomplete": res.Incomplete(), "errors": errorStrings(res.Errors), "duration_seconds": d.Seconds(),
		})
		return
	}
	for _, e := range res.Errors {
		fmt.Fprintf(g.env.stderr, "could not read %s\n", e.Error())
	}
	g.printf("Files:  %d new, %d changed, %d unmodified\n", s.FilesNew, s.FilesChanged, s.FilesUnmodified)
	g.printf("Dirs:   %d new, %d changed, %d unmodified\n", s.DirsNew, s.DirsChanged, s.DirsUnmodified)
	g.printf("Read:   %s of %s\n", formatBytes(res.BytesRead), formatBytes(s.TotalBytesProcessed))
	g.printf("Added:  %s to the repository (%s stored)\n", formatBytes(s.DataAdded), formatBytes(s.DataAddedPacked))
	g.printf("snapshot %s saved in %s\n", res.Snapshot.ID.Str(), formatDuration(d))
}

func errorStrings(errs []backup.FileError) []string {
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

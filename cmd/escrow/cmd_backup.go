package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/progress"
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
	rp, err := g.newProgress(progress.Options{Action: "backup", Unsized: o.Stdin || o.StdinFromCommand})
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			rp.Abort()
		}
	}()
	opts := backup.Options{
		Excludes: excludes, OneFileSystem: o.OneFileSystem, Tags: o.Tags, Host: o.Host,
		NoParent: o.Force, ProgramVersion: "escrow " + version, Logger: g.logger(),
	}
	if rp != nil {
		opts.Progress = func(p backup.Progress) {
			rp.Done(p.Files, p.Bytes)
			rp.SetErrors(uint64(p.Errors))
		}
	}
	var res *backup.Result
	start := time.Now()
	switch {
	case o.Stdin:
		res, err = backup.Stream(ctx, r, &countingReader{g.env.stdin, rp}, o.StdinFilename, opts)
	case o.StdinFromCommand:
		res, err = backupCommand(ctx, r, args, o.StdinFilename, opts, rp)
	default:
		opts.Paths = args
		if o.Parent != "" {
			if opts.Parent, err = repo.FindSnapshot(snaps, o.Parent, repo.SnapshotFilter{}); err != nil {
				return usageError(fmt.Errorf("--parent: %w", err))
			}
		} else if !o.Force {
			opts.Parent = findParentFor(snaps, opts.Host, args)
		}
		res, err = backupFiles(ctx, r, opts, rp)
	}
	if err != nil {
		return fmt.Errorf("backup failed, no snapshot saved: %w", err)
	}
	ok = true
	if o.Stdin || o.StdinFromCommand {
		rp.AddDone(1, 0)
	}
	rp.Finish()
	printBackupSummary(g, res, time.Since(start))
	if res.Incomplete() {
		return withCode(exitIncomplete, fmt.Errorf("snapshot %s saved, but %d paths could not be read (listed above); it is tagged %q", res.Snapshot.ID.Str(), len(res.Errors), repo.TagIncomplete))
	}
	return nil
}

// backupFiles backs up opts.Paths while, for the progress display, a scan
// of the same paths counts the totals alongside.
func backupFiles(ctx context.Context, r *repo.Repository, opts backup.Options, rp *progress.Reporter) (*backup.Result, error) {
	if rp == nil {
		return backup.Files(ctx, r, opts)
	}
	scanCtx, stopScan := context.WithCancel(ctx)
	var scan sync.WaitGroup
	scan.Go(func() {
		t, err := backup.Scan(scanCtx, opts, func(t backup.ScanTotals) { rp.Total(t.Files, t.Bytes, false) })
		if err == nil {
			rp.Total(t.Files, t.Bytes, true)
		}
	})
	res, err := backup.Files(ctx, r, opts)
	stopScan()
	scan.Wait()
	return res, err
}

// backupCommand streams a command's output; the command's failure fails the
// backup, so a dump that died half-way is never saved as a good snapshot.
func backupCommand(ctx context.Context, r *repo.Repository, argv []string, filename string, opts backup.Options, rp *progress.Reporter) (*backup.Result, error) {
	c, err := source.StartCommand(ctx, argv, nil)
	if err != nil {
		return nil, err
	}
	res, err := backup.Stream(ctx, r, &countingReader{c, rp}, filename, opts)
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
		for _, e := range res.Errors {
			_ = printJSONLine(g, resticError{MessageType: "error", Error: resticMessage{e.Err.Error()}, During: "archival", Item: e.Path})
		}
		_ = printJSONLine(g, newBackupSummaryJSON(res, d))
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

// backupSummaryJSON is restic's `backup --json` summary message (restic
// 0.14's fields and the later data_added_packed, backup_start and
// backup_end), so tools that read restic's output read escrow's, followed by
// escrow's own fields.
type backupSummaryJSON struct {
	MessageType         string    `json:"message_type"`
	FilesNew            uint64    `json:"files_new"`
	FilesChanged        uint64    `json:"files_changed"`
	FilesUnmodified     uint64    `json:"files_unmodified"`
	DirsNew             uint64    `json:"dirs_new"`
	DirsChanged         uint64    `json:"dirs_changed"`
	DirsUnmodified      uint64    `json:"dirs_unmodified"`
	DataBlobs           int       `json:"data_blobs"`
	TreeBlobs           int       `json:"tree_blobs"`
	DataAdded           uint64    `json:"data_added"`
	DataAddedPacked     uint64    `json:"data_added_packed"`
	TotalFilesProcessed uint64    `json:"total_files_processed"`
	TotalBytesProcessed uint64    `json:"total_bytes_processed"`
	TotalDuration       float64   `json:"total_duration"`
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
	SnapshotID          string    `json:"snapshot_id"`

	BytesRead       uint64   `json:"bytes_read"`
	Incomplete      bool     `json:"incomplete"`
	Errors          []string `json:"errors"`
	DurationSeconds float64  `json:"duration_seconds"`
}

func newBackupSummaryJSON(res *backup.Result, d time.Duration) backupSummaryJSON {
	s := res.Summary
	return backupSummaryJSON{
		MessageType: "summary",
		FilesNew:    s.FilesNew, FilesChanged: s.FilesChanged, FilesUnmodified: s.FilesUnmodified,
		DirsNew: s.DirsNew, DirsChanged: s.DirsChanged, DirsUnmodified: s.DirsUnmodified,
		DataBlobs: s.DataBlobs, TreeBlobs: s.TreeBlobs, DataAdded: s.DataAdded, DataAddedPacked: s.DataAddedPacked,
		TotalFilesProcessed: s.TotalFilesProcessed, TotalBytesProcessed: s.TotalBytesProcessed,
		TotalDuration: d.Seconds(), BackupStart: s.BackupStart, BackupEnd: s.BackupEnd,
		SnapshotID: res.Snapshot.ID.String(),
		BytesRead:  res.BytesRead, Incomplete: res.Incomplete(), Errors: errorStrings(res.Errors), DurationSeconds: d.Seconds(),
	}
}

// resticError is restic's JSON error message, one per path that could not
// be read.
type resticError struct {
	MessageType string        `json:"message_type"`
	Error       resticMessage `json:"error"`
	During      string        `json:"during"`
	Item        string        `json:"item"`
}

type resticMessage struct {
	Message string `json:"message"`
}

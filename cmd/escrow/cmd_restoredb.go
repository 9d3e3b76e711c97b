package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/progress"
	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/restore"
)

type restoreDBOptions struct {
	To           string
	Create       bool
	Force        bool
	Stdout       bool
	PasswordFile string
	Hosts        []string
	TempDir      string
}

func newRestoreDBCommand(g *globalOptions) *cobra.Command {
	o := &restoreDBOptions{}
	cmd := &cobra.Command{
		Use:   "restore-db SNAPSHOT NAME (--to URL [--create] [--force] | --stdout)",
		Short: "Pipe a database dump back into a server",
		Long: `Restore the dump NAME from SNAPSHOT into the database at URL, through the
server's own client (mariadb or mysql, psql, sqlite3).

NAME is a database name (shop), TYPE/NAME (mysql/shop, postgres/globals,
sqlite/app) or the dump's path (/databases/mysql/shop.sql). SNAPSHOT is
"latest" (the newest dump of NAME) or a snapshot ID prefix.

URL is one of
  mysql://USER@HOST[:PORT]/DB           mysql:///DB?socket=/run/mysqld/mysqld.sock
  postgres://USER@HOST[:PORT]/DB        postgres:///DB?host=/var/run/postgresql
  sqlite:///ABSOLUTE/PATH.sqlite
The password comes from --db-password-file or $ESCROW_DB_PASSWORD_FILE, never
from the URL.

The target must exist (--create makes it) and hold no tables (--force writes
over it: the dump's tables are dropped and recreated, others are left; an
SQLite file is replaced whole). A PostgreSQL restore is one transaction; an
SQLite restore replaces the file only once complete.`,
		Example: `  escrow restore-db latest shop --to mysql://shop@localhost/shop --create
  escrow restore-db latest postgres/globals --to postgres://postgres@/postgres?host=/var/run/postgresql
  escrow restore-db 3fa2c1 sqlite/app --to sqlite:///var/www/app/database/database.sqlite --force
  escrow restore-db latest mysql/shop --stdout | gzip > shop.sql.gz`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRestoreDB(cmd.Context(), g, o, args[0], args[1])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.To, "to", "", "the database to restore into, as a URL (see above)")
	f.BoolVar(&o.Create, "create", false, "create the database (or file) if it does not exist")
	f.BoolVar(&o.Force, "force", false, "write into a database that already holds tables")
	f.BoolVar(&o.Stdout, "stdout", false, "write the dump to standard output instead")
	f.StringVar(&o.PasswordFile, "db-password-file", "", "read the database password from this file (default $ESCROW_DB_PASSWORD_FILE)")
	f.StringArrayVarP(&o.Hosts, "host", "H", nil, "only dumps made on this host (repeatable)")
	f.StringVar(&o.TempDir, "temp-dir", "", "folder for the credential file (default $TMPDIR)")
	return cmd
}

func runRestoreDB(ctx context.Context, g *globalOptions, o *restoreDBOptions, ref, name string) error {
	if o.Stdout == (o.To != "") {
		return usageError(errors.New("give --to URL (the database to restore into) or --stdout"))
	}
	if o.Stdout && (o.Create || o.Force) {
		return usageError(errors.New("--create and --force need --to"))
	}
	var to database.Spec
	if o.To != "" {
		var err error
		if to, err = database.ParseURL(o.To); err != nil {
			return usageError(err)
		}
		if to.Password, err = dbPassword(g, o.PasswordFile); err != nil {
			return usageError(err)
		}
	}

	r, err := g.openRepo(ctx)
	if err != nil {
		return err
	}
	defer closeRepo(r)
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	sn, path, err := findDump(snaps, ref, name, to.Type, o.Hosts)
	if err != nil {
		return err
	}
	if err := g.loadIndex(ctx, r); err != nil {
		return err
	}
	node, err := r.FindNode(ctx, sn, path)
	if err != nil {
		return err
	}
	if node.Type != repo.NodeFile {
		return fmt.Errorf("%s is a %s in snapshot %s, not a dump", path, node.Type, sn.ID.Str())
	}
	if o.Stdout {
		return restore.Dump(ctx, r, node, g.env.stdout)
	}

	typ, dbName, _ := database.ParseDumpPath(path)
	if typ != to.Type {
		return usageError(fmt.Errorf("%s is a %s dump; --to names a %s database", path, typ, to.Type))
	}
	opts := database.RestoreOptions{Create: o.Create, Force: o.Force, TempDir: o.TempDir,
		Globals: typ == database.Postgres && dbName == database.GlobalsName && sn.HasTag(database.TagGlobals)}
	if opts.Globals && (o.Create || o.Force) {
		return usageError(errors.New("roles (postgres/globals) belong to the server: --create and --force do not apply"))
	}

	rp, err := g.newProgress(progress.Options{Action: "restore " + string(typ) + "/" + dbName, Names: restoreNames()})
	if err != nil {
		return err
	}
	rp.Total(1, node.Size, true)
	start := time.Now()
	pr, pw := io.Pipe()
	var eg errgroup.Group
	eg.Go(func() error {
		pw.CloseWithError(restore.Dump(ctx, r, node, pw))
		return nil
	})
	err = database.Restore(ctx, to, &countingReader{pr, rp}, opts)
	// Stop the reader of the repository if the restore ended early.
	pr.CloseWithError(errors.New("restore ended"))
	_ = eg.Wait()
	if err == nil {
		rp.AddDone(1, 0)
		rp.Finish()
	} else {
		rp.Abort()
	}
	switch {
	case errors.Is(err, database.ErrNotEmpty):
		return fmt.Errorf("%w; restore into an empty database, or add --force to write over it", err)
	case errors.Is(err, database.ErrNoDatabase):
		return fmt.Errorf("%w; add --create to create it", err)
	case err != nil:
		return fmt.Errorf("restore of %s from snapshot %s failed: %w", path, sn.ID.Str(), err)
	}
	if g.JSON {
		return printJSONLine(g, map[string]any{"message_type": "summary", "snapshot_id": sn.ID.String(), "path": path, "to": o.To,
			"bytes": node.Size, "duration_seconds": time.Since(start).Seconds()})
	}
	g.printf("restored %s (%s) from snapshot %s into %s in %s\n", path, formatBytes(node.Size), sn.ID.Str(), o.To, formatDuration(time.Since(start)))
	return nil
}

// findDump picks the dump named name ("shop", "mysql/shop" or
// "/databases/mysql/shop.sql") in the snapshot ref ("latest" or an ID
// prefix) among snapshots tagged db. typ, when known from the target,
// settles a bare name that several database types share.
func findDump(snaps []*repo.Snapshot, ref, name string, typ database.Type, hosts []string) (*repo.Snapshot, string, error) {
	want := map[string]bool{}
	switch {
	case strings.HasPrefix(name, "/"):
		if _, _, ok := database.ParseDumpPath(name); !ok {
			return nil, "", usageError(fmt.Errorf("%s is not a dump path: dumps live at /databases/<type>/<name>.sql", name))
		}
		want[name] = true
	case strings.Contains(name, "/"):
		ts, db, _ := strings.Cut(name, "/")
		t, err := database.ParseType(ts)
		if err != nil {
			return nil, "", usageError(fmt.Errorf("dump name %q: %w", name, err))
		}
		want[database.DumpPath(t, db)] = true
	case typ != "":
		want[database.DumpPath(typ, name)] = true
	default:
		for _, t := range []database.Type{database.MySQL, database.Postgres, database.SQLite} {
			want[database.DumpPath(t, name)] = true
		}
	}
	var dumps []*repo.Snapshot
	kinds := map[string]bool{}
	f := repo.SnapshotFilter{Hosts: hosts, Tags: []string{database.TagDB}}
	for _, sn := range snaps {
		if f.Match(sn) && len(sn.Paths) == 1 && want[sn.Paths[0]] {
			dumps = append(dumps, sn)
			kinds[sn.Paths[0]] = true
		}
	}
	if len(kinds) > 1 {
		var names []string
		for p := range kinds {
			t, db, _ := database.ParseDumpPath(p)
			names = append(names, string(t)+"/"+db)
		}
		return nil, "", usageError(fmt.Errorf("%q names dumps of several databases (%s): give TYPE/NAME", name, strings.Join(names, ", ")))
	}
	if ref == "latest" {
		if len(dumps) == 0 {
			return nil, "", fmt.Errorf("no dump of %q: %w (escrow snapshots --tag db lists the dumps)", name, repo.ErrNoSnapshot)
		}
		sn := dumps[len(dumps)-1]
		return sn, sn.Paths[0], nil
	}
	sn, err := repo.FindSnapshot(snaps, ref, repo.SnapshotFilter{Hosts: hosts})
	if err != nil {
		return nil, "", err
	}
	for _, d := range dumps {
		if d == sn {
			return sn, sn.Paths[0], nil
		}
	}
	return nil, "", fmt.Errorf("snapshot %s is not a dump of %q (it holds %s)", sn.ID.Str(), name, strings.Join(sn.Paths, ", "))
}

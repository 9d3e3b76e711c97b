package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/progress"
)

func newDBCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Dump databases into the repository, or find a site's databases",
		Long: `Dump MySQL/MariaDB, PostgreSQL and SQLite databases into the repository,
each as a snapshot of its own holding /databases/<type>/<name>.sql, and find
the databases a site's configuration names. Restore with "escrow restore-db".
See docs/databases.md.`,
	}
	cmd.AddCommand(newDBDumpCommand(g), newDBDiscoverCommand(g))
	return cmd
}

// dbDumpOptions describe one server's databases by flags. The agent's
// configuration file describes the same database.Spec.
type dbDumpOptions struct {
	Type         string
	Host         string
	Port         int
	Socket       string
	User         string
	PasswordFile string
	Databases    []string
	All          bool
	NoGlobals    bool
	Path         string
	Name         string
	Tags         []string
	TempDir      string
	Config       string
}

func (o *dbDumpOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Type, "type", "", "database type: mysql (also MariaDB), postgres or sqlite")
	f.StringVar(&o.Host, "host", "", "server host name or address (default: the local socket)")
	f.IntVar(&o.Port, "port", 0, "server port (default: the client's)")
	f.StringVar(&o.Socket, "socket", "", "MySQL socket file, or PostgreSQL socket folder")
	f.StringVar(&o.User, "user", "", "database user (default: the client's, usually the system user)")
	f.StringVar(&o.PasswordFile, "db-password-file", "", "read the database password from this file (default $ESCROW_DB_PASSWORD_FILE; none for socket authentication)")
	f.StringArrayVar(&o.Databases, "database", nil, "dump this database (repeatable)")
	f.BoolVar(&o.All, "all", false, "dump every database except the server's own")
	f.BoolVar(&o.NoGlobals, "no-globals", false, "postgres: do not dump roles and tablespaces")
	f.StringVar(&o.Path, "path", "", "sqlite: the database file")
	f.StringVar(&o.Name, "name", "", "sqlite: name of the dump (default: the file name without extension)")
	f.StringArrayVar(&o.Tags, "tag", nil, "add this tag to the snapshots (repeatable)")
	f.StringVar(&o.TempDir, "temp-dir", "", "folder for credential files and SQLite's consistent copy (default $TMPDIR)")
	f.StringVar(&o.Config, "config", "", "dump the databases of this agent configuration file (all, or the one named)")
}

// spec checks the flags and builds the database spec, password included.
func (o *dbDumpOptions) spec(g *globalOptions) (database.Spec, error) {
	if o.Type == "" {
		return database.Spec{}, errors.New("--type is required: mysql, postgres or sqlite")
	}
	t, err := database.ParseType(o.Type)
	if err != nil {
		return database.Spec{}, err
	}
	spec := database.Spec{Type: t, Host: o.Host, Port: o.Port, Socket: o.Socket, User: o.User,
		Databases: o.Databases, All: o.All, NoGlobals: o.NoGlobals, Name: o.Name}
	if t == database.SQLite {
		if o.Path == "" {
			return spec, errors.New("--type sqlite needs --path, the database file")
		}
		if len(o.Databases) > 0 || o.All || o.Host != "" || o.Port != 0 || o.Socket != "" || o.User != "" {
			return spec, errors.New("--type sqlite takes --path (and --name), not server options")
		}
		if spec.Path, err = filepath.Abs(o.Path); err != nil {
			return spec, err
		}
		return spec, nil
	}
	if o.Path != "" || o.Name != "" {
		return spec, fmt.Errorf("--path and --name are for sqlite, not %s", t)
	}
	if o.All == (len(o.Databases) > 0) {
		return spec, errors.New("give --database NAME (repeatable) or --all")
	}
	spec.Password, err = dbPassword(g, o.PasswordFile)
	return spec, err
}

// dbPassword reads the database password from --db-password-file or
// $ESCROW_DB_PASSWORD_FILE, as the agent reads a database's password_file;
// none is fine (socket or peer authentication).
func dbPassword(g *globalOptions, file string) (string, error) {
	if file == "" {
		file = g.env.getenv("ESCROW_DB_PASSWORD_FILE")
	}
	if file == "" {
		return "", nil
	}
	p, err := config.ReadSecretFile(file, "database password")
	if err != nil {
		return "", usageError(fmt.Errorf("database password file %w", err))
	}
	return p, nil
}

func newDBDumpCommand(g *globalOptions) *cobra.Command {
	o := &dbDumpOptions{}
	cmd := &cobra.Command{
		Use:   "dump --type TYPE [flags] | --config FILE [NAME]",
		Short: "Dump databases, each into a snapshot of its own",
		Long: `Dump databases with their own tools (mariadb-dump or mysqldump, pg_dump and
pg_dumpall, sqlite3), streaming each into a snapshot holding one file,
/databases/<type>/<name>.sql, tagged db, db:<type> and server:<version>.

A dump whose tool fails, or whose output is cut short, saves no snapshot;
the others still do. Exit status: 0 when every dump was saved, 1 otherwise.`,
		Example: `  escrow db dump --type mysql --user shop --db-password-file /etc/escrow/shop.pw --database shop
  escrow db dump --type mysql --socket /run/mysqld/mysqld.sock --user root --all
  escrow db dump --type postgres --host 127.0.0.1 --user app --db-password-file /etc/escrow/app.pw --database app
  escrow db dump --type sqlite --path /var/www/app/database/database.sqlite
  escrow db dump --config /etc/escrow/escrow.yaml          # every configured database, now
  escrow db dump --config /etc/escrow/escrow.yaml mysql    # the one named mysql`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.Config != "" {
				if cmd.Flags().NFlag() > 1 && !cmd.Flags().Changed("json") {
					return usageError(errors.New("--config takes no other dump flags: the configuration file describes the databases"))
				}
				return runDBDumpConfig(cmd.Context(), g, o.Config, args)
			}
			if len(args) > 0 {
				return usageError(fmt.Errorf("a database name (%s) is only taken with --config; use --database", args[0]))
			}
			spec, err := o.spec(g)
			if err != nil {
				return usageError(err)
			}
			return runDBDump(cmd.Context(), g, spec, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runDBDump(ctx context.Context, g *globalOptions, spec database.Spec, o *dbDumpOptions) error {
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
	if err := g.loadIndex(ctx, r); err != nil {
		return err
	}
	rp, err := g.newProgress(progress.Options{Action: "dump", Unit: "dumps", Unsized: true})
	if err != nil {
		return err
	}
	results, err := database.Dump(ctx, r, spec, database.Options{
		TempDir: o.TempDir, Tags: o.Tags, ProgramVersion: "escrow " + version, Logger: g.logger(),
		Progress: dumpProgress(rp),
	})
	if len(results) > 0 {
		rp.Done(uint64(len(results)), 0)
		rp.Finish()
	} else {
		rp.Abort()
	}
	printDumpResults(g, results)
	if err == nil {
		if len(results) == 0 && !g.JSON {
			g.printf("no databases to dump on %s\n", spec)
		}
		return nil
	}
	if len(results) == 0 {
		return fmt.Errorf("no snapshot saved: %w", err)
	}
	failed := 0
	for _, res := range results {
		if res.Err != nil {
			failed++
		}
	}
	return fmt.Errorf("%d of %d database dumps failed (listed above); no snapshot was saved for them", failed, len(results))
}

// runDBDumpConfig dumps the databases an agent configuration names, as the
// agent would, now.
func runDBDumpConfig(ctx context.Context, g *globalOptions, file string, args []string) error {
	cfg, err := config.Load(file)
	if err != nil {
		return configProblems(g, file, err)
	}
	var chosen []*config.Database
	var names []string
	for i := range cfg.Databases {
		db := &cfg.Databases[i]
		names = append(names, db.Name)
		if len(args) == 0 || args[0] == db.Name {
			chosen = append(chosen, db)
		}
	}
	if len(chosen) == 0 {
		if len(names) == 0 {
			return usageError(fmt.Errorf("%s configures no databases", file))
		}
		return usageError(fmt.Errorf("%s configures no database named %q (it has: %s)", file, args[0], strings.Join(names, ", ")))
	}
	log := g.logger()
	r, err := openAgentRepo(ctx, g, cfg, log)
	if err != nil {
		return err
	}
	defer closeRepo(r)
	lock, err := r.Lock(ctx, false)
	if err != nil {
		return err
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
	if err := loadIndexLogged(ctx, r, log); err != nil {
		return err
	}
	var all []database.Result
	failed := 0
	for _, db := range chosen {
		results, err := dumpConfigured(ctx, r, cfg, db, log)
		all = append(all, results...)
		if err != nil {
			failed++
			if len(results) == 0 {
				fmt.Fprintf(g.env.stderr, "could not dump %s\n", err)
			}
		}
	}
	printDumpResults(g, all)
	if failed > 0 {
		return fmt.Errorf("%d of %d configured databases failed (listed above); no snapshot was saved for what failed", failed, len(chosen))
	}
	return nil
}

// dumpProgress feeds the progress display from database.Dump, whose byte
// count starts again with each database.
func dumpProgress(rp *progress.Reporter) func(database.Progress) {
	if rp == nil {
		return nil
	}
	var mu sync.Mutex
	var name string
	var last uint64
	return func(p database.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if n := string(p.Type) + "/" + p.Database; n != name {
			if name != "" {
				rp.AddDone(1, 0)
			}
			name, last = n, 0
			rp.SetAction("dump " + n)
		}
		rp.AddDone(0, p.Bytes-last)
		last = p.Bytes
	}
}

func printDumpResults(g *globalOptions, results []database.Result) {
	if g.JSON {
		out := []map[string]any{}
		for _, res := range results {
			m := map[string]any{"type": res.Type, "database": res.Database, "path": res.Path,
				"bytes": res.Bytes, "duration_seconds": res.Duration.Seconds()}
			if res.Err != nil {
				m["error"] = res.Err.Error()
			} else {
				m["snapshot_id"] = res.Snapshot.ID.String()
				m["tags"] = res.Snapshot.Tags
			}
			out = append(out, m)
		}
		// One line: with --json, status messages may come before it.
		_ = printJSONLine(g, out)
		return
	}
	for _, res := range results {
		name := string(res.Type) + "/" + res.Database
		if res.Err != nil {
			fmt.Fprintf(g.env.stderr, "could not dump %s\n", res.Err)
			continue
		}
		g.printf("%s: snapshot %s saved, %s in %s (%s)\n", name, res.Snapshot.ID.Str(), formatBytes(res.Bytes),
			formatDuration(res.Duration.Round(time.Millisecond)), strings.Join(res.Snapshot.Tags, ", "))
	}
}

func newDBDiscoverCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "discover PATH",
		Short: "List the databases a site's configuration names",
		Long: `Look below PATH for WordPress's wp-config.php and .env files (Laravel, Symfony)
and list the databases they name, with the user; passwords are never shown.`,
		Example: "  escrow db discover /var/www",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			found, err := database.Discover(args[0])
			if err != nil {
				return usageError(err)
			}
			if g.JSON {
				out := []map[string]any{}
				for _, f := range found {
					s := f.Spec
					out = append(out, map[string]any{"file": f.File, "type": s.Type, "host": s.Host, "port": s.Port,
						"socket": s.Socket, "user": s.User, "databases": s.Databases, "path": s.Path,
						"password_set": s.Password != ""})
				}
				return printJSON(g, out)
			}
			if len(found) == 0 {
				g.printf("no database settings found below %s\n", args[0])
			}
			for _, f := range found {
				g.printf("%s\n    %s\n", f.File, f.Spec)
			}
			return nil
		},
	}
}

package database

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/escrow-backup/escrow/source"
)

// RestoreOptions control Restore.
type RestoreOptions struct {
	// Create makes the database (or the SQLite file) when it does not
	// exist; without it a missing target is ErrNoDatabase.
	Create bool
	// Force writes into a database that already holds tables: a MySQL or
	// PostgreSQL dump drops and recreates the tables it contains, and
	// leaves others alone; an SQLite file is replaced whole. Without it a
	// non-empty target is ErrNotEmpty.
	Force bool
	// Globals says the dump is PostgreSQL's roles and tablespaces
	// (DumpPath(Postgres, GlobalsName)), which belong to the server, not to
	// the target database.
	Globals bool
	// TempDir holds the credential files; default os.TempDir().
	TempDir string
	// Env is the clients' environment; default os.Environ().
	Env []string
}

// Restore pipes dump, an SQL dump as Dump stores it, into the database to
// names, through the server's own client (mariadb or mysql, psql, sqlite3).
// It checks the target before it reads any of dump: it must exist (or
// opts.Create makes it) and hold no tables (or opts.Force). If reading dump
// fails the client is killed before it sees the end of its input, so it
// never takes a dump cut short for a whole one; if the client fails, its
// exit status and the end of its error output are the error.
//
// A PostgreSQL dump is restored in one transaction, so a failure leaves
// the database as it was. A MySQL restore that fails leaves the tables
// restored so far. An SQLite dump is restored into a new file next to the
// target, which replaces the target only when complete.
func Restore(ctx context.Context, to Spec, dump io.Reader, opts RestoreOptions) error {
	if opts.TempDir == "" {
		opts.TempDir = os.TempDir()
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	name := to.Path
	if to.Type != SQLite {
		if len(to.Databases) != 1 || to.All {
			return fmt.Errorf("restore into %s: name exactly one database", to.Type)
		}
		name = to.Databases[0]
	}
	if err := to.validate(); err != nil {
		return err
	}
	sec := newSecrets(opts.TempDir)
	defer sec.remove()
	t := &tools{env: opts.Env}
	var err error
	switch to.Type {
	case MySQL:
		err = restoreMySQL(ctx, to, t, sec, dump, opts)
	case Postgres:
		err = restorePostgres(ctx, to, t, sec, dump, opts)
	case SQLite:
		err = restoreSQLite(ctx, to, t, dump, opts)
	}
	if err != nil {
		return &Error{Type: to.Type, Database: name, Server: to.server(), Err: err}
	}
	return nil
}

func restoreMySQL(ctx context.Context, to Spec, t *tools, sec *secrets, dump io.Reader, opts RestoreOptions) error {
	client, err := t.find("mariadb-client (or mysql-client)", "mariadb", "mysql")
	if err != nil {
		return err
	}
	c, err := newMySQLConn(to, t, sec)
	if err != nil {
		return err
	}
	db := to.Databases[0]
	out, err := c.query(ctx, client, "", "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+mysqlString(db))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if strings.TrimSpace(out) == "0" {
		if !opts.Create {
			return ErrNoDatabase
		}
		if _, err := c.query(ctx, client, "", "CREATE DATABASE "+mysqlIdent(db)+" CHARACTER SET utf8mb4"); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	} else {
		out, err := c.query(ctx, client, "", "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+mysqlString(db))
		if err != nil {
			return fmt.Errorf("count tables: %w", err)
		}
		if err := checkEmpty(out, opts.Force); err != nil {
			return err
		}
	}
	return pipe(ctx, c.env, append(c.argv(client), "--database="+db), dump, nil)
}

func restorePostgres(ctx context.Context, to Spec, t *tools, sec *secrets, dump io.Reader, opts RestoreOptions) error {
	psql, err := t.find("postgresql-client", "psql")
	if err != nil {
		return err
	}
	c, err := newPgConn(to, t, sec)
	if err != nil {
		return err
	}
	db := to.Databases[0]
	if opts.Globals {
		return restorePgGlobals(ctx, c, psql, db, dump)
	}
	// Whether the database exists is asked of the maintenance database,
	// as a connection to a missing one fails with a message in the
	// server's language.
	var maint string
	var out string
	for _, m := range []string{"postgres", "template1"} {
		if out, err = c.query(ctx, psql, m, "SELECT count(*) FROM pg_database WHERE datname = :'name'", "name="+db); err == nil {
			maint = m
			break
		}
	}
	if maint == "" {
		return fmt.Errorf("connect: %w", err)
	}
	if strings.TrimSpace(out) == "0" {
		if !opts.Create {
			return ErrNoDatabase
		}
		// template0 is the empty template that pg_dump's output expects.
		if _, err := c.query(ctx, psql, maint, `CREATE DATABASE :"name" TEMPLATE template0`, "name="+db); err != nil {
			return fmt.Errorf("create database: %w", err)
		}
	} else {
		out, err := c.query(ctx, psql, db, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'`)
		if err != nil {
			return fmt.Errorf("count tables: %w", err)
		}
		if err := checkEmpty(out, opts.Force); err != nil {
			return err
		}
	}
	argv := []string{psql, "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--dbname=" + c.conninfo(db)}
	return pipe(ctx, c.env, argv, dump, nil)
}

// restorePgGlobals replays roles and tablespaces. They are not
// transactional as a whole, and the dump creates every role, including
// the one restoring it, which exists already: so psql carries on after an
// error, and every error except "already exists" (SQLSTATE 42710) fails the
// restore.
func restorePgGlobals(ctx context.Context, c *pgConn, psql, db string, dump io.Reader) error {
	argv := []string{psql, "-X", "-q", "-w", "-v", "VERBOSITY=verbose", "--dbname=" + c.conninfo(db)}
	errs := &pgErrors{}
	if err := pipe(ctx, c.env, argv, dump, errs); err != nil {
		return err
	}
	if len(errs.failed) > 0 {
		return fmt.Errorf("psql reported %d errors: %s", errs.n, strings.Join(errs.failed, "; "))
	}
	return nil
}

// pgErrors collects psql's error lines that are not "already exists".
type pgErrors struct {
	partial string
	failed  []string // the first few
	n       int
}

// psql with VERBOSITY=verbose writes "psql:<stdin>:12: ERROR:  42710: ...".
var pgSQLState = regexp.MustCompile(`^(?:psql:[^ ]*: )?[A-Z]+:  ([0-9A-Z]{5}): `)

func (p *pgErrors) Write(b []byte) (int, error) {
	lines := strings.Split(p.partial+string(b), "\n")
	p.partial = lines[len(lines)-1]
	for _, l := range lines[:len(lines)-1] {
		m := pgSQLState.FindStringSubmatch(l)
		if m == nil {
			continue // DETAIL, HINT, LOCATION lines, or a psql message (then psql also fails)
		}
		code := m[1]
		if strings.HasPrefix(code, "00") || strings.HasPrefix(code, "01") || code == "42710" {
			continue // notices, warnings, duplicate objects
		}
		p.n++
		if len(p.failed) < 5 {
			p.failed = append(p.failed, l)
		}
	}
	return len(b), nil
}

func checkEmpty(count string, force bool) error {
	n, err := strconv.Atoi(strings.TrimSpace(count))
	if err != nil {
		return fmt.Errorf("count tables: unexpected answer %q", count)
	}
	if n > 0 && !force {
		return fmt.Errorf("%w: it holds %d tables", ErrNotEmpty, n)
	}
	return nil
}

func restoreSQLite(ctx context.Context, to Spec, t *tools, dump io.Reader, opts RestoreOptions) error {
	sqlite3, err := t.find("sqlite3", "sqlite3")
	if err != nil {
		return err
	}
	target := to.Path
	old, err := os.Stat(target)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if !opts.Create {
			return ErrNoDatabase
		}
		old = nil
	case err != nil:
		return err
	case !old.Mode().IsRegular():
		return fmt.Errorf("%s is not a file", target)
	default:
		out, err := query(ctx, t.env, []string{sqlite3, "-batch", "-bail", target, ".timeout " + sqliteBusyTimeout,
			"SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view')"}, "")
		if err != nil {
			return fmt.Errorf("count tables: %w", err)
		}
		if err := checkEmpty(out, opts.Force); err != nil {
			return err
		}
	}
	// Restore next to the target and rename over it when complete, so the
	// target is never half restored.
	dir := filepath.Dir(target)
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".escrow-restore-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	f.Close()
	cleanup := func() {
		for _, suffix := range []string{"", "-journal", "-wal", "-shm"} {
			_ = os.Remove(tmp + suffix)
		}
	}
	if err := pipe(ctx, t.env, []string{sqlite3, "-batch", "-bail", tmp}, dump, nil); err != nil {
		cleanup()
		return err
	}
	if err := matchOwner(tmp, old, dir); err != nil {
		cleanup()
		return err
	}
	// Side files of the old database would be replayed into the new one.
	for _, suffix := range []string{"-journal", "-wal", "-shm"} {
		if err := os.Remove(target + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			cleanup()
			return err
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		cleanup()
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// pipe runs argv with dump as its standard input; stderr, when not nil, also
// receives the client's error output. If reading dump fails, the client is
// killed before it sees the end of its input, so it cannot commit a partial
// restore.
func pipe(ctx context.Context, env, argv []string, dump io.Reader, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	source.KillWithParent(cmd)
	tail := &tailBuffer{max: 4096}
	cmd.Stderr = tail
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(tail, stderr)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", filepath.Base(argv[0]), err)
	}
	src := &errReader{rd: dump}
	_, copyErr := io.Copy(in, src)
	if src.err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("read the dump: %w (%s was stopped before the end of its input)", src.err, filepath.Base(argv[0]))
	}
	_ = in.Close()
	if err := cmd.Wait(); err != nil {
		return toolError(argv[0], err, tail.String())
	}
	if copyErr != nil {
		return fmt.Errorf("%s stopped reading the dump before its end: %w", filepath.Base(argv[0]), copyErr)
	}
	return nil
}

// errReader remembers the error of its reader, to tell a failed read from
// a failed write in io.Copy.
type errReader struct {
	rd  io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.rd.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

package database

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/escrow-backup/escrow/source"
)

// pgDumpFlags: plain SQL (not the custom format, which is compressed and
// so defeats deduplication between consecutive dumps); --clean --if-exists
// put a DROP ... IF EXISTS before each object, so the dump restores into an
// empty database and, with restore-db --force, over an existing copy of
// itself. pg_dump always reads in one repeatable-read snapshot, so the dump
// is consistent without locking writers out.
var pgDumpFlags = []string{"--format=plain", "--clean", "--if-exists", "--no-password"}

// pgConn runs PostgreSQL programs against one server.
type pgConn struct {
	spec Spec
	env  []string
}

func newPgConn(spec Spec, t *tools, sec *secrets) (*pgConn, error) {
	c := &pgConn{spec: spec, env: t.env}
	if spec.Password != "" {
		// libpq reads PGPASSWORD before the password file; drop it so an
		// inherited one cannot override the spec's.
		f, err := sec.write("pgpass", "*:*:*:*:"+pgpassEscape(spec.Password)+"\n")
		if err != nil {
			return nil, err
		}
		c.env = envWith(t.env, []string{"PGPASSWORD", "PGPASSFILE"}, "PGPASSFILE="+f)
	}
	return c, nil
}

func pgpassEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
}

// conninfo is a libpq connection string for db. It is given to the tools
// as --dbname, which keeps any character in a name from being read as an
// option, and never holds the password.
func (c *pgConn) conninfo(db string) string {
	s := c.spec
	var kv []string
	add := func(k, v string) {
		if v != "" {
			kv = append(kv, k+"='"+strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)+"'")
		}
	}
	host, port := s.Host, s.Port
	if s.Socket != "" {
		host = s.Socket
		// A socket file given instead of its folder: .s.PGSQL.<port>.
		if p, ok := strings.CutPrefix(filepath.Base(s.Socket), ".s.PGSQL."); ok {
			host = filepath.Dir(s.Socket)
			if n, err := strconv.Atoi(p); err == nil && port == 0 {
				port = n
			}
		}
	}
	add("host", host)
	if port != 0 {
		add("port", strconv.Itoa(port))
	}
	add("user", s.User)
	add("dbname", db)
	add("connect_timeout", "30")
	add("application_name", "escrow")
	return strings.Join(kv, " ")
}

// query runs SQL with psql in db and returns the rows, one per line,
// columns separated by tabs. vars become psql variables, which SQL reads
// safely quoted as :'name' (literal) or :"name" (identifier).
func (c *pgConn) query(ctx context.Context, psql, db, sql string, vars ...string) (string, error) {
	argv := []string{psql, "-X", "-q", "-A", "-t", "-F", "\t", "-w", "-v", "ON_ERROR_STOP=1"}
	for _, v := range vars {
		argv = append(argv, "-v", v)
	}
	argv = append(argv, "--dbname="+c.conninfo(db))
	// Variables are only interpolated in input read from a script, so the
	// SQL goes to standard input, not to -c.
	return query(ctx, c.env, argv, sql)
}

func planPostgres(ctx context.Context, spec Spec, t *tools, sec *secrets) (*plan, error) {
	psql, err := t.find("postgresql-client", "psql")
	if err != nil {
		return nil, err
	}
	pgDump, err := t.find("postgresql-client", "pg_dump")
	if err != nil {
		return nil, err
	}
	pgDumpall := ""
	if !spec.NoGlobals {
		if pgDumpall, err = t.find("postgresql-client", "pg_dumpall"); err != nil {
			return nil, err
		}
	}
	c, err := newPgConn(spec, t, sec)
	if err != nil {
		return nil, err
	}
	// The database to connect to for the version, the list and the
	// globals: the first one named that accepts the connection (so one
	// missing database fails only its own dump), or else postgres.
	var home, out string
	var firstErr error
	for _, db := range append(append([]string(nil), spec.Databases...), "postgres") {
		out, err = c.query(ctx, psql, db, "SELECT current_setting('server_version'), rolsuper FROM pg_roles WHERE rolname = current_user")
		if err == nil {
			home = db
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if home == "" {
		return nil, fmt.Errorf("connect: %w", firstErr)
	}
	version, super, _ := strings.Cut(strings.TrimSpace(out), "\t")
	p := &plan{tags: []string{versionTag("postgres", version)}}
	dbs := spec.Databases
	if spec.All {
		// Every user may connect to every database by default, so for a
		// site's user "all" means the databases it owns: the others would
		// only fail on permissions. A superuser gets them all.
		out, err := c.query(ctx, psql, home, `SELECT datname FROM pg_database
WHERE datallowconn AND NOT datistemplate AND has_database_privilege(datname, 'CONNECT')
  AND (pg_has_role(datdba, 'MEMBER') OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
ORDER BY datname`)
		if err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		dbs = nil
		for _, db := range strings.Split(out, "\n") {
			if db != "" {
				dbs = append(dbs, db)
			}
		}
	}
	if !spec.NoGlobals {
		argv := []string{pgDumpall, "--globals-only", "--no-password", "--dbname=" + c.conninfo(""), "--database=" + home}
		if super != "t" {
			// Only a superuser may read role passwords (pg_authid); any
			// user can dump the roles without them.
			argv = append(argv, "--no-role-passwords")
		}
		p.jobs = append(p.jobs, job{
			name: GlobalsName,
			file: strings.TrimPrefix(DumpPath(Postgres, GlobalsName), "/"),
			tags: []string{TagGlobals},
			start: func(ctx context.Context) (io.ReadCloser, error) {
				return source.StartCommand(ctx, argv, c.env)
			},
			complete: func(tail []byte) bool {
				return lastLineHasPrefix(tail, "-- PostgreSQL database cluster dump complete", pgAfterTrailer)
			},
		})
	}
	for _, db := range dbs {
		if err := checkName(db); err != nil {
			p.jobs = append(p.jobs, failedJob(Postgres, db, err))
			continue
		}
		argv := append(append([]string{pgDump}, pgDumpFlags...), "--dbname="+c.conninfo(db))
		p.jobs = append(p.jobs, job{
			name: db,
			file: strings.TrimPrefix(DumpPath(Postgres, db), "/"),
			start: func(ctx context.Context) (io.ReadCloser, error) {
				return source.StartCommand(ctx, argv, c.env)
			},
			complete: func(tail []byte) bool {
				return lastLineHasPrefix(tail, "-- PostgreSQL database dump complete", pgAfterTrailer)
			},
		})
	}
	return p, nil
}

// pgAfterTrailer accepts what pg_dump writes after its trailer: the
// comment's closing line and, since the 2025 security releases, the
// \unrestrict line that ends psql's restricted mode.
func pgAfterTrailer(line string) bool {
	return line == "--" || strings.HasPrefix(line, `\unrestrict `)
}

package database

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/escrow-backup/escrow/source"
)

// mysqlDumpFlags make a dump that restores the database as it was at one
// instant, with everything in it, and that deduplicates from one day to the
// next:
//
//   - --single-transaction reads every InnoDB table in one consistent
//     snapshot without locking the site out (MyISAM tables are not made
//     consistent by it; nothing short of locking them is);
//   - --quick streams rows instead of buffering each table in memory;
//   - --routines, --triggers, --events: stored code is part of the
//     database;
//   - --hex-blob writes binary columns as hex, so the dump is plain text
//     whatever the data;
//   - --default-character-set=utf8mb4 keeps every character (utf8 in older
//     tools is the 3-byte subset);
//   - --no-tablespaces: tablespaces need the PROCESS privilege that a
//     site's user lacks (MySQL 8.0.21 and later refuse without it);
//   - --skip-dump-date: the same data gives the same bytes, so an unchanged
//     database costs nothing to store again.
//
// The database name is given without --databases, so the dump holds no
// CREATE DATABASE or USE and can be restored under another name.
var mysqlDumpFlags = []string{
	"--single-transaction", "--quick", "--routines", "--triggers", "--events",
	"--hex-blob", "--default-character-set=utf8mb4", "--no-tablespaces", "--skip-dump-date",
}

// mysqlSystemDatabases are left out of "all": the first three are views of
// the server's state, and mysql holds the server's own tables (users,
// grants, time zones) whose layout belongs to one server version; restoring
// them into another version breaks it.
var mysqlSystemDatabases = map[string]bool{
	"information_schema": true, "performance_schema": true, "sys": true, "mysql": true,
}

// mysqlConn runs MySQL programs against one server.
type mysqlConn struct {
	spec    Spec
	env     []string
	optFile string // option file holding the password; "" without one
}

func newMySQLConn(spec Spec, t *tools, sec *secrets) (*mysqlConn, error) {
	c := &mysqlConn{spec: spec, env: t.env}
	if spec.Password != "" {
		f, err := sec.write("my.cnf", "[client]\npassword=\""+mysqlOptionEscape(spec.Password)+"\"\n")
		if err != nil {
			return nil, err
		}
		c.optFile = f
		// MYSQL_PWD is deprecated; drop it so it cannot disagree.
		c.env = envWith(t.env, []string{"MYSQL_PWD"})
	}
	return c, nil
}

// mysqlOptionEscape escapes a value for a double-quoted option-file value,
// as the MySQL and MariaDB option-file readers unescape it.
func mysqlOptionEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(s)
}

// argv starts a command line for tool: the option file (which must come
// first) and the connection.
func (c *mysqlConn) argv(tool string) []string {
	argv := []string{tool}
	if c.optFile != "" {
		argv = append(argv, "--defaults-extra-file="+c.optFile)
	}
	s := c.spec
	if s.Host != "" {
		argv = append(argv, "--host="+s.Host)
	}
	if s.Port != 0 {
		argv = append(argv, "--port="+strconv.Itoa(s.Port))
	}
	if s.Socket != "" {
		argv = append(argv, "--socket="+s.Socket)
	}
	if s.User != "" {
		argv = append(argv, "--user="+s.User)
	}
	return argv
}

// query runs SQL with the client in db ("" for none) and returns the rows,
// one per line, columns separated by tabs.
func (c *mysqlConn) query(ctx context.Context, client, db, sql string) (string, error) {
	argv := append(c.argv(client), "--batch", "--skip-column-names", "--raw")
	if db != "" {
		argv = append(argv, "--database="+db)
	}
	return query(ctx, c.env, argv, sql)
}

// mysqlString is a string literal that means the same under every sql_mode
// (NO_BACKSLASH_ESCAPES, ANSI_QUOTES), so a name can never break out of it.
func mysqlString(s string) string {
	if s == "" {
		return "''"
	}
	return "CONVERT(X'" + hex.EncodeToString([]byte(s)) + "' USING utf8mb4)"
}

// mysqlIdent quotes an identifier.
func mysqlIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func planMySQL(ctx context.Context, spec Spec, t *tools, sec *secrets) (*plan, error) {
	client, err := t.find("mariadb-client (or mysql-client)", "mariadb", "mysql")
	if err != nil {
		return nil, err
	}
	dumper, err := t.find("mariadb-client (or mysql-client)", "mariadb-dump", "mysqldump")
	if err != nil {
		return nil, err
	}
	c, err := newMySQLConn(spec, t, sec)
	if err != nil {
		return nil, err
	}
	// Asking the version first also proves the credentials, so a wrong
	// password is one clear error rather than one per database.
	out, err := c.query(ctx, client, "", "SELECT VERSION()")
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	p := &plan{tags: []string{mysqlVersionTag(strings.TrimSpace(out))}}
	dbs := spec.Databases
	if spec.All {
		out, err := c.query(ctx, client, "", "SHOW DATABASES")
		if err != nil {
			return nil, fmt.Errorf("list databases: %w", err)
		}
		dbs = nil
		for _, db := range strings.Split(out, "\n") {
			if db != "" && !mysqlSystemDatabases[db] {
				dbs = append(dbs, db)
			}
		}
	}
	for _, db := range dbs {
		if err := checkName(db); err != nil {
			p.jobs = append(p.jobs, failedJob(MySQL, db, err))
			continue
		}
		argv := append(append(c.argv(dumper), mysqlDumpFlags...), db)
		p.jobs = append(p.jobs, job{
			name: db,
			file: strings.TrimPrefix(DumpPath(MySQL, db), "/"),
			start: func(ctx context.Context) (io.ReadCloser, error) {
				return source.StartCommand(ctx, argv, c.env)
			},
			complete: func(tail []byte) bool {
				// Written last, after the session settings are restored.
				return lastLineHasPrefix(tail, "-- Dump completed", nil)
			},
		})
	}
	return p, nil
}

// mysqlVersionTag turns VERSION() ("10.11.6-MariaDB-0+deb12u1",
// "8.0.36-0ubuntu0.22.04.1") into "server:mariadb-10.11.6" or
// "server:mysql-8.0.36".
func mysqlVersionTag(v string) string {
	if strings.Contains(v, "MariaDB") {
		// Old replication handshakes prefix "5.5.5-" to MariaDB versions.
		return versionTag("mariadb", strings.TrimPrefix(v, "5.5.5-"))
	}
	return versionTag("mysql", v)
}

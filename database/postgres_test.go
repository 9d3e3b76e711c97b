//go:build unix

package database_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// pgShop fills db with a site's kind of data and schema objects: a
// sequence, text in many scripts, every byte value, JSON, NULLs, times, a
// view, a function and a trigger.
func pgShop(t *testing.T, srv *testenv.PostgresServer, db string) {
	t.Helper()
	srv.Exec(t, db, `
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text, created timestamptz, balance numeric(12,2), prefs jsonb);
INSERT INTO customers (name, note, created, balance, prefs)
  SELECT 'customer ' || g || ' 🚀 Ünïcødé 中文', CASE WHEN g % 7 = 0 THEN NULL ELSE repeat(E'quote '' bs \\ tab \t nl \n ', g % 5) END,
         timestamptz '2026-01-02 03:04:05.123456+00' + g * interval '1 second', g * 1.25, jsonb_build_object('n', g, 'tags', ARRAY['a', 'b'])
  FROM generate_series(1, 3000) g;
CREATE TABLE files (id int PRIMARY KEY, data bytea);
INSERT INTO files VALUES (1, (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea ORDER BY b) FROM generate_series(0, 255) b)), (2, ''), (3, NULL);
CREATE TABLE pairs (id bigserial PRIMARY KEY, v int NOT NULL);
CREATE VIEW big_spenders AS SELECT id, name FROM customers WHERE balance > 3000;
CREATE FUNCTION note_default() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.note := coalesce(NEW.note, 'n/a'); RETURN NEW; END $$;
CREATE TRIGGER customers_note BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION note_default();
`)
}

// pgChecksums hashes each table's rows in a fixed order.
func pgChecksums(t *testing.T, srv *testenv.PostgresServer, db string, tables ...string) string {
	t.Helper()
	var q []string
	for _, tb := range tables {
		q = append(q, fmt.Sprintf("SELECT '%s', md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')), count(*) FROM %s t", tb, tb))
	}
	return srv.Exec(t, db, strings.Join(q, " UNION ALL ")+";")
}

func pgObjects(t *testing.T, srv *testenv.PostgresServer, db string) string {
	t.Helper()
	return srv.Exec(t, db, `SELECT (SELECT count(*) FROM pg_views WHERE schemaname = 'public'),
  (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal), (SELECT count(*) FROM pg_proc WHERE proname = 'note_default'),
  (SELECT last_value FROM customers_id_seq)`)
}

func pgSpec(srv *testenv.PostgresServer, dbs ...string) database.Spec {
	return database.Spec{Type: database.Postgres, Host: srv.Host, Port: srv.Port, User: srv.User,
		Password: srv.Password, Databases: dbs}
}

func pgWriterEnv(srv *testenv.PostgresServer) []string {
	return append(os.Environ(), "PGPASSWORD="+srv.Password)
}

func TestDBPostgresDumpRestore(t *testing.T) {
	srv := testenv.Postgres(t)
	r := newRepo(t)
	db := srv.NewDatabase(t, "shop")
	pgShop(t, srv, db)
	role := db + "_owner"
	srv.Exec(t, "postgres", "CREATE ROLE "+role+" LOGIN PASSWORD 'pw'")
	want := pgChecksums(t, srv, db, "customers", "files")
	wantObjects := pgObjects(t, srv, db)

	w := startPairWriter(t, pgWriterEnv(srv), []string{"psql", "-X", "-q", "-h", srv.SocketDir, "-p", strconv.Itoa(srv.Port), "-U", srv.User, "-d", db},
		func(i int) string {
			return fmt.Sprintf("BEGIN; INSERT INTO pairs (v) VALUES (%d); INSERT INTO pairs (v) VALUES (%d); COMMIT;\n", i, i)
		})
	w.waitFor(20)
	before := w.sent()
	res := dump(t, r, pgSpec(srv, db), database.Options{})
	if w.sent() == before {
		t.Error("the writer wrote nothing while the dump ran")
	}
	w.Stop(t)

	if len(res) != 2 || res[0].Database != "globals" || res[1].Database != db {
		t.Fatalf("results: %+v", res)
	}
	version := strings.Fields(srv.Version)[0]
	globals, sn := res[0].Snapshot, res[1].Snapshot
	hasTags(t, globals, "db", "db:postgres", "db:globals", "server:postgres-"+version)
	hasTags(t, sn, "db", "db:postgres", "server:postgres-"+version)
	if sn.HasTag("db:globals") || globals.Paths[0] != "/databases/postgres/globals.sql" {
		t.Errorf("globals snapshot %v %v, database snapshot %v", globals.Paths, globals.Tags, sn.Tags)
	}
	path := "/databases/postgres/" + db + ".sql"
	if sn.Paths[0] != path {
		t.Fatalf("paths %v", sn.Paths)
	}
	if text := dumpText(t, r, globals, globals.Paths[0]); !strings.Contains(text, "CREATE ROLE "+role) || !strings.Contains(text, "SCRAM-SHA-256") {
		t.Errorf("globals lack the role or its password:\n%.2000s", text)
	}

	target := db + "_restored"
	to := pgSpec(srv, target)
	opts := database.RestoreOptions{Create: true, TempDir: t.TempDir()}
	if err := database.Restore(context.Background(), to, readDump(t, r, sn, path), opts); err != nil {
		t.Fatal(err)
	}
	if got := pgChecksums(t, srv, target, "customers", "files"); got != want {
		t.Errorf("restored checksums\n%s\nwant\n%s", got, want)
	}
	if got := pgObjects(t, srv, target); got != wantObjects {
		t.Errorf("restored views, triggers, functions, sequence: %q, want %q", got, wantObjects)
	}
	pairs, _ := strconv.Atoi(strings.TrimSpace(srv.Exec(t, target, "SELECT count(*) FROM pairs")))
	if pairs == 0 || pairs%2 != 0 {
		t.Errorf("restored %d rows of pairs: the dump is not one consistent state", pairs)
	}

	err := database.Restore(context.Background(), to, readDump(t, r, sn, path), database.RestoreOptions{TempDir: t.TempDir()})
	if !errors.Is(err, database.ErrNotEmpty) || !strings.Contains(err.Error(), target) {
		t.Fatalf("restore into a non-empty database: %v", err)
	}
	srv.Exec(t, target, "UPDATE customers SET balance = 0")
	if err := database.Restore(context.Background(), to, readDump(t, r, sn, path), database.RestoreOptions{Force: true, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if got := pgChecksums(t, srv, target, "customers", "files"); got != want {
		t.Errorf("forced restore: checksums\n%s\nwant\n%s", got, want)
	}

	// Roles come back from the globals, over the roles that exist.
	srv.Exec(t, "postgres", "DROP ROLE "+role)
	gopts := database.RestoreOptions{Globals: true, TempDir: t.TempDir()}
	if err := database.Restore(context.Background(), pgSpec(srv, "postgres"), readDump(t, r, globals, globals.Paths[0]), gopts); err != nil {
		t.Fatal(err)
	}
	if got := srv.Exec(t, "postgres", "SELECT rolcanlogin FROM pg_roles WHERE rolname = '"+role+"'"); strings.TrimSpace(got) != "t" {
		t.Errorf("role %s not restored: %q", role, got)
	}
}

// A site's own user, not a superuser, can dump its database and the roles
// (without their passwords, which only a superuser may read).
func TestDBPostgresDumpAsSiteUser(t *testing.T) {
	srv := testenv.Postgres(t)
	r := newRepo(t)
	db := srv.NewDatabase(t, "site")
	user := db + "_user"
	srv.Exec(t, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'; ALTER DATABASE %s OWNER TO %s",
		user, strings.ReplaceAll(testenv.TestDBPassword, "'", "''"), db, user))
	spec := pgSpec(srv, db)
	spec.User = user
	spec.Host, spec.Port, spec.Socket = "", srv.Port, srv.SocketDir
	res := dump(t, r, spec, database.Options{})
	if len(res) != 2 {
		t.Fatalf("results %+v", res)
	}
	if text := dumpText(t, r, res[0].Snapshot, res[0].Path); !strings.Contains(text, "CREATE ROLE "+user) || strings.Contains(text, "SCRAM-SHA-256") {
		t.Errorf("globals of a site user:\n%.2000s", text)
	}

	// "All", for a site's user, is the databases it owns: it may connect to
	// the others, but not read them. A superuser gets every one.
	spec.Databases, spec.All = nil, true
	res = dump(t, r, spec, database.Options{})
	if len(res) != 2 || res[0].Database != "globals" || res[1].Database != db {
		t.Errorf("all, as the site's user: %+v", res)
	}
	super := pgSpec(srv)
	super.All, super.NoGlobals = true, true
	got := map[string]bool{}
	for _, x := range dump(t, r, super, database.Options{}) {
		got[x.Database] = true
	}
	if !got[db] || !got["postgres"] || got["template0"] || got["template1"] {
		t.Errorf("all, as a superuser: %v", got)
	}
}

func TestDBPostgresDumpFailures(t *testing.T) {
	srv := testenv.Postgres(t)
	r := newRepo(t)
	db := srv.NewDatabase(t, "shop")
	srv.Exec(t, db, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
	opts := database.Options{}

	wrong := pgSpec(srv, db)
	wrong.Password = "not the password"
	dumpFails(t, r, wrong, opts, db, `password authentication failed for user "escrow"`)

	missing := pgSpec(srv, "no_such_db")
	missing.NoGlobals = true
	dumpFails(t, r, missing, opts, `"no_such_db"`, `database "no_such_db" does not exist`)

	// One missing database fails alone.
	both := pgSpec(srv, "no_such_db", db)
	both.NoGlobals = true
	res, err := database.Dump(context.Background(), r, both, database.Options{TempDir: t.TempDir()})
	if err == nil || len(res) != 2 || res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "does not exist") || res[1].Snapshot == nil {
		t.Fatalf("dump of a missing and a present database: %v %+v", err, res)
	}

	spec := pgSpec(srv, db)
	spec.NoGlobals = true
	err = dumpFails(t, r, spec, database.Options{Env: envWithPath(pathWithout(t, "pg_dump"))}, db, "pg_dump is not in PATH", "install postgresql-client")
	if !errors.Is(err, database.ErrToolMissing) {
		t.Errorf("tool missing: %v is not ErrToolMissing", err)
	}

	env := fakeTool(t, "pg_dump", "printf -- '--\\n-- PostgreSQL database dump\\n--\\n\\nCREATE TABLE public.t (id integer);\\nCOPY public.t (id) FROM stdin;\\n1\\n'\n")
	err = dumpFails(t, r, spec, database.Options{Env: env}, db, "cut short")
	if !errors.Is(err, database.ErrTruncated) {
		t.Errorf("truncated dump: %v is not ErrTruncated", err)
	}
}

func TestDBPostgresServerKilledMidDump(t *testing.T) {
	srv := testenv.NewPostgres(t)
	r := newRepo(t)
	db := srv.NewDatabase(t, "big")
	srv.Exec(t, db, "CREATE TABLE big_rows AS SELECT g AS id, repeat(md5(g::text), 4) AS v FROM generate_series(1, 250000) g")
	spec := pgSpec(srv, db)
	spec.NoGlobals = true
	var once sync.Once
	opts := database.Options{Progress: func(p database.Progress) {
		if p.Bytes > 1<<20 {
			once.Do(srv.Kill)
		}
	}}
	dumpFails(t, r, spec, opts, `"`+db+`"`, "pg_dump failed")
}

func TestDBPostgresRestoreFailures(t *testing.T) {
	srv := testenv.Postgres(t)
	ctx := context.Background()
	target := srv.NewDatabase(t, "target")
	to := pgSpec(srv, target)
	opts := database.RestoreOptions{TempDir: t.TempDir()}

	// The client fails on line 2: loud, and the single transaction leaves
	// nothing of line 1 behind.
	err := database.Restore(ctx, to, strings.NewReader("CREATE TABLE a (id int);\nTHIS IS NOT SQL;\n"), opts)
	if err == nil || !strings.Contains(err.Error(), "psql failed: exit status 3") || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("client failure: %v", err)
	}
	if n := strings.TrimSpace(srv.Exec(t, target, "SELECT count(*) FROM pg_tables WHERE tablename = 'a'")); n != "0" {
		t.Errorf("a failed restore left table a behind")
	}

	// The dump breaks off: psql is stopped before its input ends, so it
	// cannot commit what it read.
	broken := io.MultiReader(strings.NewReader("CREATE TABLE b (id int);\n"), errReader{errors.New("blob 3fa2 damaged")})
	if err := database.Restore(ctx, to, broken, opts); err == nil || !strings.Contains(err.Error(), "blob 3fa2 damaged") {
		t.Fatalf("unreadable dump: %v", err)
	}
	if n := strings.TrimSpace(srv.Exec(t, target, "SELECT count(*) FROM pg_tables WHERE tablename = 'b'")); n != "0" {
		t.Errorf("a broken-off restore committed table b")
	}

	if err := database.Restore(ctx, pgSpec(srv, "missing_db"), strings.NewReader(""), opts); !errors.Is(err, database.ErrNoDatabase) {
		t.Fatalf("missing database: %v", err)
	}
}

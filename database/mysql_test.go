//go:build unix

package database_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// mysqlShop fills db with what a site's database holds: text in every
// script, NULLs, every byte value in a blob, decimals and times, and stored
// code (a view, a trigger, a procedure, an event).
func mysqlShop(t *testing.T, srv *testenv.MariaDBServer, db string) {
	t.Helper()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	srv.Exec(t, db, `
CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) CHARACTER SET utf8mb4,
  note TEXT CHARACTER SET utf8mb4, created DATETIME(6), balance DECIMAL(12,2)) ENGINE=InnoDB;
INSERT INTO customers (name, note, created, balance)
  SELECT CONCAT('customer ', seq, ' 🚀 Ünïcødé 中文'), IF(seq % 7 = 0, NULL, REPEAT('quote '' dq " bs \\ nl \n ', seq % 5)),
         '2026-01-02 03:04:05.123456' + INTERVAL seq SECOND, seq * 1.25
  FROM seq_1_to_3000;
CREATE TABLE files (id INT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB;
INSERT INTO files VALUES (1, X'`+hex.EncodeToString(all)+`'), (2, ''), (3, NULL);
CREATE TABLE pairs (id INT PRIMARY KEY AUTO_INCREMENT, v INT NOT NULL) ENGINE=InnoDB;
CREATE VIEW big_spenders AS SELECT id, name FROM customers WHERE balance > 3000;
CREATE TRIGGER customers_note BEFORE INSERT ON customers FOR EACH ROW SET NEW.note = COALESCE(NEW.note, 'n/a');
CREATE PROCEDURE count_customers() SELECT COUNT(*) FROM customers;
CREATE EVENT tidy ON SCHEDULE EVERY 1 DAY DO DELETE FROM pairs WHERE v < 0;
`)
}

// mysqlChecksums returns CHECKSUM TABLE of the tables, without the
// database's name, so two databases compare.
func mysqlChecksums(t *testing.T, srv *testenv.MariaDBServer, db string, tables ...string) string {
	t.Helper()
	out := srv.Exec(t, db, "CHECKSUM TABLE "+strings.Join(tables, ", ")+" EXTENDED")
	return strings.ReplaceAll(out, db+".", "")
}

// mysqlStoredCode counts the views, triggers, routines and events of db.
func mysqlStoredCode(t *testing.T, srv *testenv.MariaDBServer, db string) string {
	t.Helper()
	q := "'" + db + "'"
	return srv.Exec(t, "", `SELECT
  (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = `+q+`),
  (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = `+q+`),
  (SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = `+q+`),
  (SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = `+q+`)`)
}

func mysqlSpec(srv *testenv.MariaDBServer, dbs ...string) database.Spec {
	return database.Spec{Type: database.MySQL, Host: srv.Host, Port: srv.Port, User: srv.User,
		Password: srv.Password, Databases: dbs}
}

// A dump taken while the site writes restores into a fresh database equal
// to the source: same table checksums, the same stored code, and a
// transaction-consistent state.
func TestDBMySQLDumpRestore(t *testing.T) {
	srv := testenv.MariaDB(t)
	r := newRepo(t)
	db := srv.NewDatabase(t, "shop")
	mysqlShop(t, srv, db)
	want := mysqlChecksums(t, srv, db, "customers", "files")
	wantCode := mysqlStoredCode(t, srv, db)

	w := startPairWriter(t, nil, []string{"mariadb", "--no-defaults", "--socket=" + srv.Socket, "--user=root", db}, func(i int) string {
		return fmt.Sprintf("BEGIN; INSERT INTO pairs (v) VALUES (%d); INSERT INTO pairs (v) VALUES (%d); COMMIT;\n", i, i)
	})
	w.waitFor(20)
	var progress uint64
	before := w.sent()
	res := dump(t, r, mysqlSpec(srv, db), database.Options{Host: "web1", Tags: []string{"nightly"},
		Progress: func(p database.Progress) { progress = p.Bytes }})
	if w.sent() == before {
		t.Error("the writer wrote nothing while the dump ran")
	}
	w.Stop(t)

	if len(res) != 1 {
		t.Fatalf("results: %+v", res)
	}
	sn := res[0].Snapshot
	path := "/databases/mysql/" + db + ".sql"
	if res[0].Path != path || len(sn.Paths) != 1 || sn.Paths[0] != path || sn.Hostname != "web1" {
		t.Fatalf("result %+v, snapshot paths %v host %q", res[0], sn.Paths, sn.Hostname)
	}
	version := strings.SplitN(srv.Version, "-", 2)[0]
	hasTags(t, sn, "db", "db:mysql", "server:mariadb-"+version, "nightly")
	if progress != res[0].Bytes || progress == 0 {
		t.Errorf("progress reported %d bytes, result %d", progress, res[0].Bytes)
	}
	text := dumpText(t, r, sn, path)
	for _, s := range []string{"-- Dump completed", "CREATE TABLE `customers`", "DROP TABLE IF EXISTS", "0x00010203"} {
		if !strings.Contains(text, s) {
			t.Errorf("dump lacks %q", s)
		}
	}
	if strings.Contains(text, "CREATE DATABASE") || strings.Contains(text, "USE `") {
		t.Error("dump names its database; it could not be restored under another name")
	}

	target := db + "_restored"
	to := mysqlSpec(srv, target)
	if err := database.Restore(context.Background(), to, readDump(t, r, sn, path), database.RestoreOptions{TempDir: t.TempDir()}); !errors.Is(err, database.ErrNoDatabase) {
		t.Fatalf("restore into a missing database without create: %v", err)
	}
	if err := database.Restore(context.Background(), to, readDump(t, r, sn, path), database.RestoreOptions{Create: true, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if got := mysqlChecksums(t, srv, target, "customers", "files"); got != want {
		t.Errorf("restored checksums\n%s\nwant\n%s", got, want)
	}
	if got := mysqlStoredCode(t, srv, target); got != wantCode {
		t.Errorf("restored views, triggers, routines, events: %q, want %q", got, wantCode)
	}
	pairs, _ := strconv.Atoi(strings.TrimSpace(srv.Exec(t, target, "SELECT COUNT(*) FROM pairs")))
	if pairs == 0 || pairs%2 != 0 {
		t.Errorf("restored %d rows of pairs: the dump is not one consistent state", pairs)
	}

	// The target now holds tables: refused without force, replaced with it.
	err := database.Restore(context.Background(), to, readDump(t, r, sn, path), database.RestoreOptions{TempDir: t.TempDir()})
	if !errors.Is(err, database.ErrNotEmpty) || !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), "4 tables") {
		t.Fatalf("restore into a non-empty database: %v", err)
	}
	srv.Exec(t, target, "UPDATE customers SET balance = 0")
	if err := database.Restore(context.Background(), to, readDump(t, r, sn, path), database.RestoreOptions{Force: true, TempDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if got := mysqlChecksums(t, srv, target, "customers", "files"); got != want {
		t.Errorf("forced restore: checksums\n%s\nwant\n%s", got, want)
	}

	// Unchanged data gives the same dump, which stores nothing new.
	srv.Exec(t, db, "TRUNCATE pairs")
	first := dump(t, r, mysqlSpec(srv, db), database.Options{})[0].Snapshot
	again := dump(t, r, mysqlSpec(srv, db), database.Options{})[0].Snapshot
	if first.Summary.DataBlobs == 0 || again.Summary.DataBlobs != 0 {
		t.Errorf("new data blobs: %d, then %d for an unchanged database", first.Summary.DataBlobs, again.Summary.DataBlobs)
	}
}

// "All" dumps each user database into its own snapshot and leaves the
// server's own schemas out.
func TestDBMySQLDumpAll(t *testing.T) {
	srv := testenv.MariaDB(t)
	r := newRepo(t)
	a := srv.NewDatabase(t, "blog")
	b := srv.NewDatabase(t, "shop")
	srv.Exec(t, a, "CREATE TABLE posts (id INT PRIMARY KEY); INSERT INTO posts VALUES (1)")
	spec := mysqlSpec(srv)
	spec.All = true
	res := dump(t, r, spec, database.Options{})
	got := map[string]bool{}
	for _, x := range res {
		got[x.Database] = true
		if len(x.Snapshot.Paths) != 1 || x.Snapshot.Paths[0] != x.Path || x.Path != "/databases/mysql/"+x.Database+".sql" {
			t.Errorf("%s: path %s, snapshot paths %v", x.Database, x.Path, x.Snapshot.Paths)
		}
	}
	if !got[a] || !got[b] {
		t.Errorf("dumped %v, want %s and %s among them", got, a, b)
	}
	for _, sys := range []string{"mysql", "sys", "information_schema", "performance_schema"} {
		if got[sys] {
			t.Errorf("dumped the server's own schema %s", sys)
		}
	}
	if n := snapshotCount(t, r); n != len(res) {
		t.Fatalf("%d snapshots for %d databases", n, len(res))
	}
}

// Each way a MySQL dump can fail is an error naming the database and the
// cause, and saves no snapshot.
func TestDBMySQLDumpFailures(t *testing.T) {
	srv := testenv.MariaDB(t)
	r := newRepo(t)
	db := srv.NewDatabase(t, "shop")
	srv.Exec(t, db, "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")

	wrong := mysqlSpec(srv, db)
	wrong.Password = "not the password"
	dumpFails(t, r, wrong, database.Options{}, db, "Access denied for user 'escrow'")

	dumpFails(t, r, mysqlSpec(srv, "no_such_db"), database.Options{}, `"no_such_db"`, "Unknown database 'no_such_db'")

	err := dumpFails(t, r, mysqlSpec(srv, db), database.Options{Env: envWithPath(pathWithout(t, "mariadb-dump", "mysqldump"))},
		db, "mariadb-dump or mysqldump is not in PATH", "install mariadb-client")
	if !errors.Is(err, database.ErrToolMissing) {
		t.Errorf("tool missing: %v is not ErrToolMissing", err)
	}

	// A dump tool that stops half-way but exits 0.
	env := fakeTool(t, "mariadb-dump", "printf -- '-- MariaDB dump 10.19\\nCREATE TABLE `t` (`id` int);\\nINSERT INTO `t` VALUES (1);\\n'\n")
	err = dumpFails(t, r, mysqlSpec(srv, db), database.Options{Env: env}, db, "cut short", "exited 0")
	if !errors.Is(err, database.ErrTruncated) {
		t.Errorf("truncated dump: %v is not ErrTruncated", err)
	}

	// One failing database does not stop the next.
	res, err := database.Dump(context.Background(), r, mysqlSpec(srv, "no_such_db", db), database.Options{TempDir: t.TempDir()})
	if err == nil || len(res) != 2 || res[0].Err == nil || res[1].Err != nil || res[1].Snapshot == nil {
		t.Fatalf("dump of a missing and a present database: %v %+v", err, res)
	}
}

// A server that dies while a dump streams fails the dump.
func TestDBMySQLServerKilledMidDump(t *testing.T) {
	srv := testenv.NewMariaDB(t)
	r := newRepo(t)
	db := srv.NewDatabase(t, "big")
	srv.Exec(t, db, `CREATE TABLE big_rows (id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB;
INSERT INTO big_rows SELECT seq, REPEAT(MD5(seq), 4) FROM seq_1_to_150000;`)
	var once sync.Once
	opts := database.Options{Progress: func(p database.Progress) {
		if p.Bytes > 512<<10 {
			once.Do(srv.Kill)
		}
	}}
	dumpFails(t, r, mysqlSpec(srv, db), opts, `"`+db+`"`, "mariadb-dump failed", "Lost connection")
}

// A restore whose client fails says so with the client's message, and one
// whose dump cannot be read stops the client.
func TestDBMySQLRestoreFailures(t *testing.T) {
	srv := testenv.MariaDB(t)
	ctx := context.Background()
	to := mysqlSpec(srv, srv.NewDatabase(t, "target"))
	opts := database.RestoreOptions{TempDir: t.TempDir()}

	err := database.Restore(ctx, to, strings.NewReader("CREATE TABLE a (id INT);\nTHIS IS NOT SQL;\n"), opts)
	if err == nil || !strings.Contains(err.Error(), "mariadb failed: exit status 1") || !strings.Contains(err.Error(), "ERROR 1064") {
		t.Fatalf("client failure: %v", err)
	}

	srv.Exec(t, "", "DROP DATABASE "+to.Databases[0]+"; CREATE DATABASE "+to.Databases[0])
	broken := io.MultiReader(strings.NewReader("CREATE TABLE b (id INT);\n"), errReader{errors.New("blob 3fa2 damaged")})
	err = database.Restore(ctx, to, broken, opts)
	if err == nil || !strings.Contains(err.Error(), "blob 3fa2 damaged") {
		t.Fatalf("unreadable dump: %v", err)
	}

	wrong := to
	wrong.Password = "nope"
	if err := database.Restore(ctx, wrong, strings.NewReader(""), opts); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Fatalf("wrong password: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

//go:build unix

package database_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// sqlite runs SQL (or dot commands) on the database file and returns the
// output.
func sqlite(t *testing.T, db string, cmds ...string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", append([]string{"-batch", "-bail", db, ".timeout 10000"}, cmds...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v: %s", db, err, out)
	}
	return string(out)
}

func sqliteVersion(t *testing.T) string {
	out, err := exec.Command("sqlite3", "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

func sqliteShop(t *testing.T, db, journal string) {
	t.Helper()
	sqlite(t, db, "PRAGMA journal_mode="+journal, `PRAGMA user_version=42;
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, data BLOB, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 2000)
  INSERT INTO items SELECT i, 'item ' || i || ' 🚀 Ünïcødé ''q''', i * 1.5, randomblob(i % 64), CASE WHEN i % 7 = 0 THEN NULL ELSE 'note' || char(10) || i END FROM n;
CREATE INDEX items_name ON items(name);
CREATE VIEW cheap AS SELECT id FROM items WHERE price < 10;
CREATE TABLE pairs (id INTEGER PRIMARY KEY AUTOINCREMENT, v INTEGER NOT NULL);
CREATE TRIGGER items_note AFTER INSERT ON items BEGIN UPDATE items SET note = coalesce(note, 'n/a') WHERE id = NEW.id; END;`)
}

// A dump taken while another process writes is one consistent state, in
// both journal modes, and restores to the same content.
func TestDBSQLiteDumpRestoreWithWriter(t *testing.T) {
	testenv.RequireBinary(t, "sqlite3")
	for _, journal := range []string{"wal", "delete"} {
		t.Run(journal, func(t *testing.T) {
			r := newRepo(t)
			dir := t.TempDir()
			src := filepath.Join(dir, "app.sqlite")
			sqliteShop(t, src, journal)
			want := sqlite(t, src, ".dump items")

			w := startPairWriter(t, nil, []string{"sqlite3", "-batch", src}, func(i int) string {
				if i == 1 {
					return ".timeout 10000\n"
				}
				return fmt.Sprintf("BEGIN IMMEDIATE; INSERT INTO pairs (v) VALUES (%d); INSERT INTO pairs (v) VALUES (%d); COMMIT;\n", i, i)
			})
			w.waitFor(50)
			tmp := t.TempDir()
			before := w.sent()
			res := dump(t, r, database.Spec{Type: database.SQLite, Path: src}, database.Options{TempDir: tmp})
			if w.sent() == before {
				t.Error("the writer wrote nothing while the dump ran")
			}
			w.waitFor(w.sent() + 20) // the writer was not blocked for good
			w.Stop(t)

			if len(res) != 1 || res[0].Database != "app" || res[0].Path != "/databases/sqlite/app.sql" {
				t.Fatalf("results %+v", res)
			}
			hasTags(t, res[0].Snapshot, "db", "db:sqlite", "server:sqlite-"+sqliteVersion(t))
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("the consistent copy was left in the temp folder: %v", left)
			}
			if journal == "delete" {
				for _, side := range []string{"-wal", "-shm"} {
					if _, err := os.Stat(src + side); err == nil {
						t.Errorf("dumping a rollback-journal database left %s", side)
					}
				}
			}

			restored := filepath.Join(dir, "restored.sqlite")
			to := database.Spec{Type: database.SQLite, Path: restored}
			if err := database.Restore(context.Background(), to, readDump(t, r, res[0].Snapshot, res[0].Path), database.RestoreOptions{}); !errors.Is(err, database.ErrNoDatabase) {
				t.Fatalf("restore to a missing file without create: %v", err)
			}
			if err := database.Restore(context.Background(), to, readDump(t, r, res[0].Snapshot, res[0].Path), database.RestoreOptions{Create: true}); err != nil {
				t.Fatal(err)
			}
			if got := sqlite(t, restored, ".dump items"); got != want {
				t.Errorf("restored items differ from the source")
			}
			pairs, _ := strconv.Atoi(strings.TrimSpace(sqlite(t, restored, "SELECT count(*) FROM pairs")))
			if pairs == 0 || pairs%2 != 0 {
				t.Errorf("restored %d rows of pairs: the dump is not one consistent state", pairs)
			}
			if got := strings.Fields(sqlite(t, restored, "PRAGMA user_version", "PRAGMA journal_mode", "PRAGMA integrity_check")); strings.Join(got, " ") != "42 "+journal+" ok" {
				t.Errorf("restored user_version, journal_mode, integrity: %v", got)
			}
		})
	}
}

// restore-db into an SQLite file: refused over a database with tables,
// which force replaces whole, keeping the file's owner and mode; a failed
// restore leaves the target as it was.
func TestDBSQLiteRestoreTarget(t *testing.T) {
	testenv.RequireBinary(t, "sqlite3")
	r := newRepo(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	sqliteShop(t, src, "wal")
	res := dump(t, r, database.Spec{Type: database.SQLite, Path: src, Name: "shop"}, database.Options{})
	if res[0].Path != "/databases/sqlite/shop.sql" {
		t.Fatalf("path %s", res[0].Path)
	}
	ctx := context.Background()

	target := filepath.Join(dir, "target.db")
	sqlite(t, target, "CREATE TABLE old (x); INSERT INTO old VALUES (1)")
	if err := os.Chmod(target, 0o660); err != nil {
		t.Fatal(err)
	}
	owner := -1
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("nobody"); err == nil {
			owner, _ = strconv.Atoi(u.Uid)
			if err := os.Chown(target, owner, -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	to := database.Spec{Type: database.SQLite, Path: target}
	err := database.Restore(ctx, to, readDump(t, r, res[0].Snapshot, res[0].Path), database.RestoreOptions{})
	if !errors.Is(err, database.ErrNotEmpty) || !strings.Contains(err.Error(), target) {
		t.Fatalf("restore over a database with tables: %v", err)
	}

	// A client failure: loud, and the target untouched.
	err = database.Restore(ctx, to, strings.NewReader("CREATE TABLE a (id);\nTHIS IS NOT SQL;\n"), database.RestoreOptions{Force: true})
	if err == nil || !strings.Contains(err.Error(), "sqlite3 failed: exit status 1") || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("client failure: %v", err)
	}
	if got := sqlite(t, target, "SELECT name FROM sqlite_master"); got != "old\n" {
		t.Fatalf("a failed restore changed the target: %q", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".target.db.escrow-restore-*")); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}

	if err := database.Restore(ctx, to, readDump(t, r, res[0].Snapshot, res[0].Path), database.RestoreOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := sqlite(t, target, "SELECT count(*) FROM items", "SELECT count(*) FROM sqlite_master WHERE name = 'old'"); got != "2000\n0\n" {
		t.Errorf("forced restore: %q", got)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("mode %v, want the replaced file's 0660", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); owner >= 0 && int(st.Uid) != owner {
		t.Errorf("owner %d, want the replaced file's %d", st.Uid, owner)
	}
}

func TestDBSQLiteDumpFailures(t *testing.T) {
	real := testenv.RequireBinary(t, "sqlite3")
	r := newRepo(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "app.db")
	sqliteShop(t, src, "wal")
	spec := database.Spec{Type: database.SQLite, Path: src}

	dumpFails(t, r, database.Spec{Type: database.SQLite, Path: filepath.Join(dir, "gone.db")}, database.Options{}, "gone.db", "no such file")
	if _, err := os.Stat(filepath.Join(dir, "gone.db")); err == nil {
		t.Error("dumping a missing database created it")
	}

	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	dumpFails(t, r, database.Spec{Type: database.SQLite, Path: garbage}, database.Options{}, "garbage", "VACUUM INTO", "file is not a database")

	err := dumpFails(t, r, spec, database.Options{Env: envWithPath(t.TempDir())}, "app", "sqlite3 is not in PATH")
	if !errors.Is(err, database.ErrToolMissing) {
		t.Errorf("tool missing: %v is not ErrToolMissing", err)
	}

	// An sqlite3 whose .dump stops half-way but exits 0.
	env := fakeTool(t, "sqlite3", `for a in "$@"; do
  case "$a" in
    .dump) printf 'PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE items (id);\nINSERT INTO items VALUES(1);\n'; exit 0 ;;
  esac
done
exec `+real+` "$@"
`)
	tmp := t.TempDir()
	err = dumpFails(t, r, spec, database.Options{Env: env, TempDir: tmp}, "app", "cut short")
	if !errors.Is(err, database.ErrTruncated) {
		t.Errorf("truncated dump: %v is not ErrTruncated", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("a failed dump left its copy: %v", left)
	}
}

// Dumps are cut in DumpChunks' shape, finer than files: a row updated in a
// dump of several MB stores one small chunk or two, not a megabyte.
func TestDBDumpChunks(t *testing.T) {
	testenv.RequireBinary(t, "sqlite3")
	r := newRepo(t)
	src := filepath.Join(t.TempDir(), "big.sqlite")
	sqlite(t, src, `CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 40000)
  INSERT INTO rows SELECT i, hex(randomblob(40)) FROM n;`)
	spec := database.Spec{Type: database.SQLite, Path: src}
	first := dump(t, r, spec, database.Options{})[0]
	node, err := r.FindNode(context.Background(), first.Snapshot, first.Path)
	if err != nil {
		t.Fatal(err)
	}
	shape := database.DumpChunks()
	if want := int(first.Bytes) / (2 * shape.Mean()); len(node.Content) < want {
		t.Errorf("a %d-byte dump is %d blobs, want at least %d", first.Bytes, len(node.Content), want)
	}

	sqlite(t, src, "UPDATE rows SET v = 'updated' WHERE id = 20000")
	second := dump(t, r, spec, database.Options{})[0]
	if s := second.Snapshot.Summary; s.DataBlobs > 3 || s.DataAdded > 3*uint64(shape.Max) {
		t.Errorf("one row updated in %d bytes stored %d blobs, %d bytes", second.Bytes, s.DataBlobs, s.DataAdded)
	}
}

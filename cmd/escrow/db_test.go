//go:build unix

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// dbPasswordFile writes the test servers' password to a file of mode 0600.
func dbPasswordFile(t *testing.T, password string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(p, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// fail runs a command that must fail with code, mentioning each of msgs.
func (c *cli) fail(code int, msgs []string, args ...string) result {
	c.t.Helper()
	r := c.run(nil, args...)
	if r.code != code {
		c.t.Fatalf("escrow %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) {
			c.t.Errorf("escrow %s: stderr does not mention %q:\n%s", strings.Join(args, " "), m, r.stderr)
		}
	}
	return r
}

// The site owner's story with MySQL: dump by hand, list, read the dump with
// restic, restore into a new database, refuse to overwrite, overwrite on
// request; and the failures, each loud and without a snapshot.
func TestDBDumpRestoreDBMySQL(t *testing.T) {
	srv := testenv.MariaDB(t)
	db := srv.NewDatabase(t, "shop")
	srv.Exec(t, db, `CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer VARCHAR(50), total DECIMAL(10,2), note TEXT) ENGINE=InnoDB;
INSERT INTO orders (customer, total, note) SELECT CONCAT('c', seq, ' ✓'), seq / 3, IF(seq % 3 = 0, NULL, 'x') FROM seq_1_to_500;`)
	checksum := func(db string) string {
		return strings.ReplaceAll(srv.Exec(t, db, "CHECKSUM TABLE orders EXTENDED"), db+".", "")
	}
	want := checksum(db)
	repoDir := filepath.Join(t.TempDir(), "repo")
	c := newCLI(t, repoDir, "ESCROW_DB_PASSWORD_FILE="+dbPasswordFile(t, srv.Password))
	c.ok("init")
	port := strconv.Itoa(srv.Port)

	out := c.ok("db", "dump", "--type", "mysql", "--host", srv.Host, "--port", port, "--user", srv.User, "--database", db, "--tag", "nightly")
	if !strings.Contains(out, "mysql/"+db+": snapshot ") {
		t.Fatalf("db dump output: %s", out)
	}
	snaps := c.snapshots()
	path := "/databases/mysql/" + db + ".sql"
	if len(snaps) != 1 || len(snaps[0].Paths) != 1 || snaps[0].Paths[0] != path {
		t.Fatalf("snapshots: %+v", snaps)
	}
	for _, tag := range []string{"db", "db:mysql", "server:mariadb-" + strings.SplitN(srv.Version, "-", 2)[0], "nightly"} {
		if !contains(snaps[0].Tags, tag) {
			t.Errorf("tags %v lack %s", snaps[0].Tags, tag)
		}
	}

	// The dump is an ordinary file of the snapshot: restic reads it.
	dump := c.ok("restore-db", "latest", db, "--stdout")
	if !strings.HasSuffix(dump, "-- Dump completed\n") {
		t.Fatalf("restore-db --stdout: %.300s", dump)
	}
	if restic, err := exec.LookPath("restic"); err == nil {
		cmd := exec.Command(restic, "-r", repoDir, "--no-lock", "dump", "latest", path)
		cmd.Env = append(os.Environ(), "RESTIC_PASSWORD=correct horse battery staple")
		got, err := cmd.Output()
		if err != nil || string(got) != dump {
			t.Errorf("restic dump latest %s: %v, %d bytes, want %d", path, err, len(got), len(dump))
		}
	} else if testenv.InCI() {
		t.Error("restic not installed")
	}

	target := db + "_copy"
	url := fmt.Sprintf("mysql://%s@%s:%d/%s", srv.User, srv.Host, srv.Port, target)
	c.fail(exitFailure, []string{"does not exist", "--create"}, "restore-db", "latest", db, "--to", url)
	out = c.ok("restore-db", "latest", db, "--to", url, "--create")
	if !strings.Contains(out, "restored "+path) || !strings.Contains(out, "into "+url) {
		t.Errorf("restore-db output: %s", out)
	}
	if got := checksum(target); got != want {
		t.Errorf("restored checksum %q, want %q", got, want)
	}
	c.fail(exitFailure, []string{"not empty", "1 tables", "--force"}, "restore-db", "latest", "mysql/"+db, "--to", url)
	srv.Exec(t, target, "DELETE FROM orders WHERE id < 100")
	c.ok("restore-db", snaps[0].ShortID, path, "--to", url, "--force")
	if got := checksum(target); got != want {
		t.Errorf("forced restore: checksum %q, want %q", got, want)
	}

	// Failures of the dump: no snapshot.
	wrong := &cli{t: t, env: append(append([]string(nil), c.env...), "ESCROW_DB_PASSWORD_FILE="+dbPasswordFile(t, "wrong"))}
	wrong.fail(exitFailure, []string{`mysql database "` + db + `"`, "Access denied", "no snapshot saved"},
		"db", "dump", "--type", "mysql", "--host", srv.Host, "--port", port, "--user", srv.User, "--database", db)
	r := c.fail(exitFailure, []string{`"missing_db"`, "Unknown database", "1 of 2 database dumps failed"},
		"db", "dump", "--type", "mysql", "--host", srv.Host, "--port", port, "--user", srv.User, "--database", "missing_db", "--database", db)
	if !strings.Contains(r.stdout, "mysql/"+db+": snapshot ") {
		t.Errorf("the good database was not dumped: %s", r.stdout)
	}
	if n := len(c.snapshots()); n != 2 {
		t.Errorf("%d snapshots, want 2: failures saved none", n)
	}

	// Failures of the restore: loud, with the client's own message.
	if r := c.run([]byte("CREATE TABLE x (id INT);\nTHIS IS NOT SQL;\n"), "backup", "--stdin", "--stdin-filename", "databases/mysql/broken.sql", "--tag", "db"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	c.fail(exitFailure, []string{"mariadb failed: exit status 1", "ERROR 1064"},
		"restore-db", "latest", "broken", "--to", fmt.Sprintf("mysql://%s@%s:%d/broken_target", srv.User, srv.Host, srv.Port), "--create")
	r = c.fail(exitUsage, []string{"holds a password"}, "restore-db", "latest", db, "--to", "mysql://escrow:hunter2@127.0.0.1/x")
	if strings.Contains(r.stderr, "hunter2") {
		t.Errorf("the password was echoed: %s", r.stderr)
	}
	c.fail(exitUsage, []string{"--to URL"}, "restore-db", "latest", db)
	c.fail(exitUsage, []string{"is a mysql dump; --to names a postgres database"}, "restore-db", "latest", "mysql/"+db, "--to", "postgres://x@127.0.0.1/y")
	c.fail(exitUsage, []string{"--database NAME"}, "db", "dump", "--type", "mysql")
	c.fail(exitFailure, []string{"no dump of \"nothing\""}, "restore-db", "latest", "nothing", "--stdout")
	c.fail(exitFailure, []string{"is not a dump of"}, "restore-db", snaps[0].ShortID, "broken", "--stdout")
}

func TestDBDumpRestoreDBPostgresAndSQLite(t *testing.T) {
	srv := testenv.Postgres(t)
	testenv.RequireBinary(t, "sqlite3")
	db := srv.NewDatabase(t, "app")
	srv.Exec(t, db, "CREATE TABLE notes (id serial PRIMARY KEY, body text); INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 300) g")
	hash := func(db string) string {
		return srv.Exec(t, db, "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM notes t")
	}
	c := newCLI(t, filepath.Join(t.TempDir(), "repo"), "ESCROW_DB_PASSWORD_FILE="+dbPasswordFile(t, srv.Password))
	c.ok("init")
	port := strconv.Itoa(srv.Port)
	out := c.ok("db", "dump", "--type", "postgres", "--socket", srv.SocketDir, "--port", port, "--user", srv.User, "--database", db)
	if !strings.Contains(out, "postgres/globals: snapshot") || !strings.Contains(out, "postgres/"+db+": snapshot") {
		t.Fatalf("db dump: %s", out)
	}
	url := fmt.Sprintf("postgres://%s@%s:%d/%s_copy", srv.User, srv.Host, srv.Port, db)
	c.ok("restore-db", "latest", db, "--to", url, "--create")
	if got, want := hash(db+"_copy"), hash(db); got != want {
		t.Errorf("restored %q, want %q", got, want)
	}
	c.ok("restore-db", "latest", "postgres/globals", "--to", fmt.Sprintf("postgres://%s@:%d/postgres?host=%s", srv.User, srv.Port, srv.SocketDir))

	dir := t.TempDir()
	src := filepath.Join(dir, "app.sqlite")
	if out, err := exec.Command("sqlite3", src, "CREATE TABLE t (a, b); INSERT INTO t VALUES (1, 'one'), (2, x'00ff');").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	// Same name as the PostgreSQL database: a bare name is then ambiguous.
	c.ok("db", "dump", "--type", "sqlite", "--path", src, "--name", db)
	c.fail(exitUsage, []string{"several databases", "postgres/" + db, "sqlite/" + db}, "restore-db", "latest", db, "--stdout")
	restored := filepath.Join(dir, "restored.sqlite")
	c.ok("restore-db", "latest", db, "--to", "sqlite://"+restored, "--create")
	got, err := exec.Command("sqlite3", restored, "SELECT a, hex(b) FROM t").CombinedOutput()
	if err != nil || string(got) != "1|6F6E65\n2|00FF\n" {
		t.Errorf("restored sqlite: %v %q", err, got)
	}
	c.fail(exitFailure, []string{"not empty", "--force"}, "restore-db", "latest", "sqlite/"+db, "--to", "sqlite://"+restored)
}

func TestDBDiscover(t *testing.T) {
	root := t.TempDir()
	site := filepath.Join(root, "blog")
	if err := os.MkdirAll(site, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := "<?php\ndefine('DB_NAME', 'blog');\ndefine('DB_USER', 'blog');\ndefine('DB_PASSWORD', 'hunter2');\ndefine('DB_HOST', 'localhost:/run/mysqld/mysqld.sock');\n"
	if err := os.WriteFile(filepath.Join(site, "wp-config.php"), []byte(cfg), 0o640); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, filepath.Join(t.TempDir(), "repo"))
	out := c.ok("db", "discover", root)
	if !strings.Contains(out, filepath.Join(site, "wp-config.php")) || !strings.Contains(out, "mysql blog on /run/mysqld/mysqld.sock as blog (password set)") {
		t.Errorf("discover: %s", out)
	}
	if js := c.ok("db", "discover", "--json", root); strings.Contains(out+js, "hunter2") || !strings.Contains(js, `"password_set": true`) {
		t.Errorf("discover shows the password or hides that it is set: %s %s", out, js)
	}
}

//go:build unix

package main

import (
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/doctor"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/s3"
)

// drillSize is how much the disaster drill protects: the site's big file,
// the rows of each database table, and the incremental rounds.
type drillSize struct {
	bigMB, rows, rounds int
}

func drillSizes() drillSize {
	if testenv.Long() {
		return drillSize{bigMB: 512, rows: 400_000, rounds: 6}
	}
	return drillSize{bigMB: 2, rows: 5_000, rounds: 3}
}

// TestDisasterDrill is the day the server is gone. A host backs up a site,
// a MariaDB, a PostgreSQL and an SQLite database in several incremental
// rounds, with its own put/get/list credential, into an Object Lock
// bucket; the owner makes the recovery kit with a read-only credential in
// it. Then the databases are dropped and the site, the configuration, the
// password file, the secrets and the state directory deleted. With nothing
// but the kit (no ESCROW_* variable, no configuration), a fresh directory
// gets the tree back byte for byte and the databases back with their own
// integrity checks passing and the same contents as at the last backup.
func TestDisasterDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("disaster drill: skipped with -short")
	}
	size := drillSizes()
	srv := testenv.MinIO(t)
	my := testenv.MariaDB(t)
	pg := testenv.Postgres(t)
	testenv.RequireBinary(t, "sqlite3")
	mycheck := testenv.RequireBinary(t, "mariadb-check")

	// The owner makes the locked repository and the two credentials.
	bucket := srv.NewLockedBucket(t, s3.Governance, 1)
	addr := srv.URL(bucket, "site1")
	newCLI(t, addr, srv.Env()...).ok("init")
	users := map[doctor.Role]testenv.Server{}
	for role, name := range map[doctor.Role]string{doctor.HostWriter: "host", doctor.Reader: "verifier"} {
		pol, err := doctor.Policy(bucket, "site1", role, doctor.MinIO)
		if err != nil {
			t.Fatal(err)
		}
		users[role] = srv.NewUser(t, name, pol)
	}
	host, verifier := users[doctor.HostWriter], users[doctor.Reader]

	// The server: configuration and secrets in etc/, the site, an SQLite
	// file, the agent's state.
	server := t.TempDir()
	etc, state := filepath.Join(server, "etc"), filepath.Join(server, "state")
	site, sqlite := filepath.Join(server, "www", "site"), filepath.Join(server, "data", "app.sqlite")
	for _, d := range []string{etc, state, filepath.Dir(sqlite)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	secret := func(name, value string) string {
		p := filepath.Join(etc, name)
		if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pwFile := secret("password", "correct horse battery staple")
	mdb, pdb := my.NewDatabase(t, "shop"), pg.NewDatabase(t, "app")
	cfg := filepath.Join(etc, "escrow.yaml")
	yaml := fmt.Sprintf(`repository: %s
password_file: %s
s3:
  access_key_id: %s
  secret_access_key_file: %s
sources:
  - path: %s
databases:
  - type: mysql
    name: shop
    host: %s
    port: %d
    user: %s
    password_file: %s
    databases: [%s]
  - type: postgres
    name: app
    host: %s
    port: %d
    user: %s
    password_file: %s
    databases: [%s]
  - type: sqlite
    path: %s
state_dir: %s
`, addr, pwFile, host.AccessKey, secret("s3.secret", host.SecretKey), site,
		my.Host, my.Port, my.User, secret("mariadb.pass", my.Password), mdb,
		pg.Host, pg.Port, pg.User, secret("postgres.pass", pg.Password), pdb, sqlite, state)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	hc := &cli{t: t, env: append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "ESCROW_REPOSITORY=" + addr, "ESCROW_PASSWORD_FILE=" + pwFile}, host.Env()...)}

	makeSite(t, site, 31, size.bigMB)
	my.Exec(t, mdb, fmt.Sprintf(`CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(60) NOT NULL, email VARCHAR(80), UNIQUE KEY (email)) ENGINE=InnoDB;
CREATE TABLE orders (id INT PRIMARY KEY AUTO_INCREMENT, customer INT NOT NULL, total DECIMAL(10,2), note TEXT, KEY (customer), KEY (total)) ENGINE=InnoDB;
INSERT INTO customers SELECT seq, CONCAT('Kunde ', seq, ' ✓'), CONCAT('c', seq, '@example.com') FROM seq_1_to_%d;
INSERT INTO orders (customer, total, note) SELECT 1 + seq %% %d, seq / 7, IF(seq %% 5 = 0, NULL, REPEAT('x', seq %% 40)) FROM seq_1_to_%d;`,
		size.rows/10, size.rows/10, size.rows))
	pg.Exec(t, pdb, fmt.Sprintf(`CREATE TABLE notes (id serial PRIMARY KEY, author text NOT NULL, body text, created timestamptz NOT NULL DEFAULT '2026-01-01');
CREATE INDEX notes_author ON notes (author);
CREATE UNIQUE INDEX notes_body_id ON notes (body, id);
INSERT INTO notes (author, body) SELECT 'a' || (g %% 97), repeat('note ' || g, 1 + g %% 5) FROM generate_series(1, %d) g;`, size.rows))
	sqlite3(t, sqlite, "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t (v) VALUES (x'00ff'), ('one');")

	rnd := rand.New(rand.NewSource(5))
	for round := range size.rounds {
		if round > 0 {
			// What changes on a live site between two backups.
			data := make([]byte, 64<<10)
			rnd.Read(data)
			if err := os.WriteFile(filepath.Join(site, "wp-content", "uploads", fmt.Sprintf("photo%d.jpg", round)), data, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(site, "wp-config.php"), fmt.Appendf(nil, "<?php define('DB_NAME','shop'); // round %d\n", round), 0o640); err != nil {
				t.Fatal(err)
			}
			my.Exec(t, mdb, fmt.Sprintf(`INSERT INTO orders (customer, total, note) SELECT 1 + seq, seq, 'round %d' FROM seq_1_to_100;
UPDATE orders SET total = total + 1 WHERE id %% 13 = %d; DELETE FROM orders WHERE id %% 101 = %d;`, round, round, round))
			pg.Exec(t, pdb, fmt.Sprintf(`INSERT INTO notes (author, body) SELECT 'round %d', 'new ' || g FROM generate_series(1, 100) g;
UPDATE notes SET body = body || '!' WHERE id %% 17 = %d; DELETE FROM notes WHERE id %% 89 = %d;`, round, round, round))
			sqlite3(t, sqlite, fmt.Sprintf("INSERT INTO t (v) VALUES ('round %d'); UPDATE t SET v = v || '+' WHERE id = 2;", round))
		}
		hc.ok("backup", site)
		hc.ok("db", "dump", "--config", cfg)
	}
	if n := len(hc.snapshots()); n != size.rounds*5 {
		// Per round: the site, MariaDB, PostgreSQL's database and
		// globals, SQLite.
		t.Fatalf("%d snapshots after %d rounds, want %d", n, size.rounds, size.rounds*5)
	}
	wantTree := digest(t, site)
	wantMy := mariadbSums(t, my, mdb)
	wantPg := postgresSums(t, pg, pdb)
	wantLite := sqlite3(t, sqlite, "SELECT id, hex(v) FROM t ORDER BY id;")

	// The owner's kit holds the read-only credential, not the host's.
	kitFile := filepath.Join(t.TempDir(), "escrow-kit.txt")
	readSecret := filepath.Join(t.TempDir(), "verifier.secret")
	if err := os.WriteFile(readSecret, []byte(verifier.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	freshCLI(t).ok("kit", "--config", cfg, "--out", kitFile, "--read-access-key-id", verifier.AccessKey, "--read-secret-file", readSecret)
	kitText, err := os.ReadFile(kitFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kitText), "access-key-id: "+verifier.AccessKey+"\n") || strings.Contains(string(kitText), host.AccessKey) {
		t.Fatalf("the kit does not hold the verifier's credential alone:\n%s", kitText)
	}
	if err := os.Remove(readSecret); err != nil {
		t.Fatal(err)
	}

	// The disaster.
	my.Exec(t, "mysql", "DROP DATABASE `"+mdb+"`")
	pg.Exec(t, "postgres", `DROP DATABASE "`+pdb+`"`)
	for _, p := range []string{site, etc, state, sqlite} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}

	// A fresh machine: the kit, the escrow binary, and new database
	// servers' own passwords (not part of the escrow).
	fresh := freshCLI(t)
	dbpw := filepath.Join(t.TempDir(), "db.pass")
	target := t.TempDir()
	start := time.Now()
	fresh.ok("restore", "latest", "--kit", kitFile, "--path", site, "--target", target, "--verify")
	treeTime := time.Since(start)
	sameTree(t, wantTree, digest(t, filepath.Join(target, site)))
	treeBytes := treeSize(t, filepath.Join(target, site))

	restoreDB := func(name, to, password string) time.Duration {
		t.Helper()
		args := []string{"restore-db", "latest", name, "--kit", kitFile, "--to", to, "--create"}
		if password != "" {
			if err := os.WriteFile(dbpw, []byte(password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--db-password-file", dbpw)
		}
		start := time.Now()
		fresh.ok(args...)
		return time.Since(start)
	}
	dbTime := restoreDB("mysql/"+mdb, fmt.Sprintf("mysql://%s@%s:%d/%s", my.User, my.Host, my.Port, mdb), my.Password)
	dbTime += restoreDB("postgres/"+pdb, fmt.Sprintf("postgres://%s@%s:%d/%s", pg.User, pg.Host, pg.Port, pdb), pg.Password)
	liteDir := t.TempDir()
	dbTime += restoreDB("sqlite/app", "sqlite://"+filepath.Join(liteDir, "app.sqlite"), "")

	var dumpBytes int64
	for _, name := range []string{"mysql/" + mdb, "postgres/" + pdb, "sqlite/app"} {
		dumpBytes += int64(len(fresh.ok("restore-db", "latest", name, "--kit", kitFile, "--stdout")))
	}

	// The databases pass their own checks and hold what they held.
	cmd := exec.Command(mycheck, "--extended", "-h", my.Host, "-P", strconv.Itoa(my.Port), "-u", my.User, "--databases", mdb)
	cmd.Env = append(os.Environ(), "MYSQL_PWD="+my.Password)
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "OK\n") != 2 {
		t.Fatalf("mariadb-check on the restored database: %v\n%s", err, out)
	}
	if got := mariadbSums(t, my, mdb); got != wantMy {
		t.Errorf("restored MariaDB checksums %q, want %q", got, wantMy)
	}
	checked := pg.Exec(t, pdb, `CREATE EXTENSION amcheck;
SELECT count(bt_index_check(c.oid, true)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
 WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace;
SELECT count(*) FROM pg_class c, verify_heapam(c.oid) WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace;`)
	if f := strings.Fields(checked); len(f) != 2 || f[0] != "3" || f[1] != "0" {
		t.Fatalf("amcheck on the restored database: %q; want 3 btree indexes checked and 0 heap problems", checked)
	}
	if got := postgresSums(t, pg, pdb); got != wantPg {
		t.Errorf("restored PostgreSQL checksums %q, want %q", got, wantPg)
	}
	if got := sqlite3(t, filepath.Join(liteDir, "app.sqlite"), "PRAGMA integrity_check; SELECT id, hex(v) FROM t ORDER BY id;"); got != "ok\n"+wantLite {
		t.Errorf("restored SQLite %q, want %q", got, "ok\n"+wantLite)
	}

	gb := func(n int64) float64 { return float64(n) / (1 << 30) }
	t.Logf("disaster drill (%d rounds, %d rows a table): files %.1f MB in %s (%.0f s/GB), databases %.1f MB of dumps in %s (%.0f s/GB), together %.0f s/GB",
		size.rounds, size.rows, float64(treeBytes)/(1<<20), treeTime.Round(time.Millisecond), treeTime.Seconds()/gb(treeBytes),
		float64(dumpBytes)/(1<<20), dbTime.Round(time.Millisecond), dbTime.Seconds()/gb(dumpBytes), (treeTime+dbTime).Seconds()/gb(treeBytes+dumpBytes))
}

func sqlite3(t *testing.T, file, sql string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", file, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", file, err, out)
	}
	return string(out)
}

func mariadbSums(t *testing.T, my *testenv.MariaDBServer, db string) string {
	t.Helper()
	return strings.ReplaceAll(my.Exec(t, db, "CHECKSUM TABLE customers, orders EXTENDED; SELECT COUNT(*) FROM orders;"), db+".", "")
}

func postgresSums(t *testing.T, pg *testenv.PostgresServer, db string) string {
	t.Helper()
	return pg.Exec(t, db, "SELECT count(*), md5(string_agg(n::text, ',' ORDER BY id)) FROM notes n")
}

// treeSize is the size of the regular files below root, as restored.
func treeSize(t *testing.T, root string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		n += fi.Size()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

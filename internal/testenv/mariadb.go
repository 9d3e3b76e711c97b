//go:build unix

package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// MariaDBServer is a private MariaDB server started from the Debian
// packages (mariadb-server-core, mariadb-client) as the current user, on a
// loopback port and a socket in a temporary folder. It is never the
// machine's own database service.
type MariaDBServer struct {
	Host     string // 127.0.0.1
	Port     int
	Socket   string
	User     string // has every privilege; its password is TestDBPassword
	Password string
	Version  string // SELECT VERSION()

	client string
	dir    string
	proc   *serverProc
	seq    atomic.Int64
}

// MariaDB returns this test binary's shared MariaDB server, starting it on
// first use. Tests share it, so each works in databases of its own (see
// NewDatabase). It skips the test when the programs are missing, or fails
// it under CI=true.
func MariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	return serverFor(t, &sharedMariaDB, "MariaDB", startMariaDB)
}

// NewMariaDB starts a server for this test alone (for tests that kill it),
// stopped and removed when the test ends.
func NewMariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	s, err := startMariaDB()
	if err != nil {
		unavailable(t, "no MariaDB server for database tests: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

func startMariaDB() (*MariaDBServer, error) {
	sbin := []string{"/usr/sbin", "/usr/libexec", "/usr/local/sbin"}
	install, err := findProgram([]string{"mariadb-install-db", "mysql_install_db"}, "/usr/bin")
	if err != nil {
		return nil, err
	}
	daemon, err := findProgram([]string{"mariadbd", "mysqld"}, sbin...)
	if err != nil {
		return nil, err
	}
	client, err := findProgram([]string{"mariadb", "mysql"})
	if err != nil {
		return nil, err
	}
	return retryStart(func() (*MariaDBServer, error) { return runMariaDB(install, daemon, client) })
}

func runMariaDB(install, daemon, client string) (*MariaDBServer, error) {
	dir, err := os.MkdirTemp("", "escrow-mariadb-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &MariaDBServer{
		Host: "127.0.0.1", Port: port, Socket: filepath.Join(dir, "mysqld.sock"),
		User: "escrow", Password: TestDBPassword, client: client, dir: dir,
	}
	data := filepath.Join(dir, "data")
	// mariadbd refuses to run as root unless told to; as any other user it
	// runs as itself.
	var asUser []string
	if os.Geteuid() == 0 {
		asUser = []string{"--user=root"}
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}, asUser...)
	if err := runLogged(exec.Command(install, args...)); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args = append([]string{"--no-defaults", "--datadir=" + data, "--socket=" + s.Socket,
		"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--skip-name-resolve",
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"), "--tmpdir=" + dir,
		"--innodb-buffer-pool-size=64M", "--innodb-log-file-size=32M",
		"--innodb-flush-log-at-trx-commit=0", "--skip-log-bin", "--max-connections=50",
		// As Debian's packaged configuration does.
		"--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci",
	}, asUser...)
	s.proc, err = startServer(exec.Command(daemon, args...), filepath.Join(dir, "mariadbd.log"), "ready for connections", time.Minute)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	pw := strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s.Password)
	setup := fmt.Sprintf(`CREATE USER 'escrow'@'%%' IDENTIFIED BY '%s';
CREATE USER 'escrow'@'localhost' IDENTIFIED BY '%s';
GRANT ALL PRIVILEGES ON *.* TO 'escrow'@'%%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'escrow'@'localhost' WITH GRANT OPTION;`, pw, pw)
	if _, err := s.exec("", setup); err != nil {
		s.stop()
		return nil, err
	}
	v, err := s.exec("", "SELECT VERSION()")
	if err != nil {
		s.stop()
		return nil, err
	}
	s.Version = strings.TrimSpace(v)
	return s, nil
}

// exec runs SQL as root over the socket and returns the rows, tab
// separated, without a header.
func (s *MariaDBServer) exec(db, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := []string{"--no-defaults", "--socket=" + s.Socket, "--user=root", "--batch", "--skip-column-names", "--raw", "--default-character-set=utf8mb4"}
	if db != "" {
		args = append(args, "--database="+db)
	}
	cmd := exec.CommandContext(ctx, s.client, args...)
	cmd.Stdin = strings.NewReader(sql)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mariadb %s: %w: %s (SQL: %.200s)", db, err, strings.TrimSpace(errb.String()), sql)
	}
	return out.String(), nil
}

// Exec runs SQL as root in db ("" for none) and returns the rows, tab
// separated; it fails the test on an error.
func (s *MariaDBServer) Exec(t testing.TB, db, sql string) string {
	t.Helper()
	out, err := s.exec(db, sql)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// NewDatabase creates an empty database with a name no other test uses and
// returns the name.
func (s *MariaDBServer) NewDatabase(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d", prefix, s.seq.Add(1))
	s.Exec(t, "", "CREATE DATABASE `"+name+"`")
	return name
}

// Kill ends the server with SIGKILL, as a crash would.
func (s *MariaDBServer) Kill() { s.proc.kill() }

func (s *MariaDBServer) stop() {
	if s.proc != nil {
		s.proc.kill()
	}
	_ = os.RemoveAll(s.dir)
}

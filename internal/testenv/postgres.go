//go:build unix

package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// PostgresServer is a private PostgreSQL server started from the Debian
// packages (postgresql, postgresql-client) on a loopback port and a socket
// folder of its own. PostgreSQL refuses to run as root, so when the tests
// run as root the server runs as the user nobody.
type PostgresServer struct {
	Host      string // 127.0.0.1
	Port      int
	SocketDir string
	User      string // a superuser; its password is TestDBPassword
	Password  string
	Version   string // SHOW server_version

	bin  string // folder of initdb, postgres and psql
	dir  string
	proc *serverProc
	seq  atomic.Int64
}

// Postgres returns this test binary's shared PostgreSQL server, starting
// it on first use; see MariaDB.
func Postgres(t testing.TB) *PostgresServer {
	t.Helper()
	return serverFor(t, &sharedPostgres, "PostgreSQL", startPostgres)
}

// NewPostgres starts a server for this test alone, stopped and removed when
// the test ends.
func NewPostgres(t testing.TB) *PostgresServer {
	t.Helper()
	s, err := startPostgres()
	if err != nil {
		unavailable(t, "no PostgreSQL server for database tests: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

// postgresBin finds the server programs: in PATH, or else in the newest
// /usr/lib/postgresql/N/bin, where Debian keeps them.
func postgresBin() (string, error) {
	if p, err := exec.LookPath("postgres"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d, nil
		}
	}
	return "", errors.New("postgres and initdb not found in PATH or /usr/lib/postgresql/*/bin")
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func startPostgres() (*PostgresServer, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(bin, "psql")); err != nil {
		return nil, fmt.Errorf("psql not found next to %s (install postgresql-client)", bin)
	}
	return retryStart(func() (*PostgresServer, error) { return runPostgres(bin) })
}

// serverCredential is who the server runs as: the current user, or nobody
// when that is root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running as root, and no user nobody to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func runPostgres(bin string) (*PostgresServer, error) {
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "escrow-postgres-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &PostgresServer{
		Host: "127.0.0.1", Port: port, SocketDir: filepath.Join(dir, "sock"),
		User: "escrow", Password: TestDBPassword, bin: bin, dir: dir,
	}
	fail := func(err error) (*PostgresServer, error) {
		s.stop()
		return nil, err
	}
	data := filepath.Join(dir, "data")
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return fail(err)
	}
	for _, d := range []string{data, s.SocketDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail(err)
		}
	}
	if cred != nil {
		// The server's user must reach its folders: the top one is
		// traversable, the data and the password file are its own.
		if err := os.Chmod(dir, 0o711); err != nil {
			return fail(err)
		}
		for _, p := range []string{data, s.SocketDir, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(err)
			}
		}
		if err := os.Chmod(s.SocketDir, 0o755); err != nil {
			return fail(err)
		}
	}
	asServer := func(cmd *exec.Cmd) *exec.Cmd {
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		return cmd
	}
	initdb := asServer(exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", s.User,
		"--pwfile="+pwfile, "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"))
	if err := runLogged(initdb); err != nil {
		return fail(fmt.Errorf("%w (the data folder %s must be reachable by the server's user)", err, data))
	}
	daemon := asServer(exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-k", s.SocketDir, "-p", strconv.Itoa(port), "-h", "127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=50", "-c", "shared_buffers=32MB"))
	s.proc, err = startServer(daemon, filepath.Join(dir, "postgres.log"), "database system is ready to accept connections", time.Minute)
	if err != nil {
		return fail(err)
	}
	v, err := s.exec("postgres", "SHOW server_version")
	if err != nil {
		return fail(err)
	}
	s.Version = strings.TrimSpace(v)
	return s, nil
}

// exec runs SQL as the superuser over the socket and returns the rows, one
// per line, columns separated by tabs.
func (s *PostgresServer) exec(db, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "psql"), "-X", "-q", "-A", "-t", "-F", "\t",
		"-v", "ON_ERROR_STOP=1", "-h", s.SocketDir, "-p", strconv.Itoa(s.Port), "-U", s.User, "-d", db)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.Password)
	cmd.Stdin = strings.NewReader(sql)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql %s: %w: %s (SQL: %.200s)", db, err, strings.TrimSpace(errb.String()), sql)
	}
	return out.String(), nil
}

// Exec runs SQL as the superuser in db and returns the rows, tab
// separated; it fails the test on an error.
func (s *PostgresServer) Exec(t testing.TB, db, sql string) string {
	t.Helper()
	out, err := s.exec(db, sql)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// NewDatabase creates an empty database with a name no other test uses and
// returns the name.
func (s *PostgresServer) NewDatabase(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%d", prefix, s.seq.Add(1))
	s.Exec(t, "postgres", `CREATE DATABASE "`+name+`"`)
	return name
}

// Kill ends the server and its backends with SIGKILL, as a crash would.
func (s *PostgresServer) Kill() { s.proc.kill() }

func (s *PostgresServer) stop() {
	if s.proc != nil {
		s.proc.kill()
	}
	_ = os.RemoveAll(s.dir)
}

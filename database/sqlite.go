package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/escrow-backup/escrow/source"
)

// An SQLite database is a file that the application may be writing at any
// moment, so it is never read directly: a copy of the file taken meanwhile
// can mix pages from before and after a transaction. Instead the sqlite3
// shell makes a consistent copy with VACUUM INTO, which reads the whole
// database inside one read transaction (in WAL mode writers carry on; in
// rollback mode they wait, up to their busy timeout, while it reads), and
// escrow then streams the copy's .dump, SQL text, and removes the copy.
//
// SQL text rather than the copied file, because it deduplicates from one
// dump to the next (a changed row changes one line, where a page file
// reshuffles), any sqlite3 version restores it, and it restores the same way
// as the other databases: by piping it into the shell.
//
// When escrow runs as root, SQLite itself gives any -wal or -shm file it
// creates next to the database the database file's owner, so the
// application can still open its database while the copy is made.

// sqliteBusyTimeout is how long VACUUM INTO waits for a writer's lock, in
// milliseconds.
const sqliteBusyTimeout = "60000"

func planSQLite(ctx context.Context, spec Spec, t *tools, tempDir string) (*plan, error) {
	sqlite3, err := t.find("sqlite3", "sqlite3")
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(spec.Path)
	if err != nil {
		// Opening a missing file would create an empty database.
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a file", spec.Path)
	}
	out, err := query(ctx, t.env, []string{sqlite3, "-version"}, "")
	if err != nil {
		return nil, err
	}
	version, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	name := spec.sqliteName()
	return &plan{
		tags: []string{versionTag("sqlite", version)},
		jobs: []job{{
			name: name,
			file: strings.TrimPrefix(DumpPath(SQLite, name), "/"),
			start: func(ctx context.Context) (io.ReadCloser, error) {
				return startSQLiteDump(ctx, sqlite3, spec.Path, tempDir, t.env)
			},
			complete: func(tail []byte) bool {
				// .dump ends with COMMIT; or, when it met an error,
				// with ROLLBACK; -- due to errors.
				return lastLineHasPrefix(tail, "COMMIT;", nil)
			},
		}},
	}, nil
}

// startSQLiteDump makes the consistent copy in a private folder below
// tempDir and starts .dump on it; closing the stream removes the copy.
func startSQLiteDump(ctx context.Context, sqlite3, src, tempDir string, env []string) (io.ReadCloser, error) {
	dir, err := makeScratch(tempDir, sqlitePrefix)
	if err != nil {
		return nil, fmt.Errorf("folder for the consistent copy: %w", err)
	}
	cp := filepath.Join(dir, "copy.sqlite")
	argv := []string{sqlite3, "-batch", "-bail", src, ".timeout " + sqliteBusyTimeout, "VACUUM INTO " + sqlString(cp)}
	if _, err := query(ctx, env, argv, ""); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("consistent copy (VACUUM INTO %s): %w", dir, err)
	}
	// .dump leaves out the header fields applications use to track their
	// schema, and the journal mode; they come first.
	argv = []string{sqlite3, "-batch", "-bail", cp}
	if isWAL(src) {
		argv = append(argv, "SELECT 'PRAGMA journal_mode=WAL;'")
	}
	argv = append(argv,
		"SELECT 'PRAGMA application_id=' || application_id || ';' FROM pragma_application_id",
		"SELECT 'PRAGMA user_version=' || user_version || ';' FROM pragma_user_version",
		".dump")
	c, err := source.StartCommand(ctx, argv, env)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &removeOnClose{ReadCloser: c, dir: dir}, nil
}

// isWAL reports whether the database file is in WAL mode (header bytes 18
// and 19 are 2).
func isWAL(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return false
	}
	return bytes.HasPrefix(h[:], []byte("SQLite format 3\x00")) && h[18] == 2 && h[19] == 2
}

// sqlString is an SQL string literal.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// removeOnClose removes a temporary folder when the stream is closed.
type removeOnClose struct {
	io.ReadCloser
	dir string
}

func (r *removeOnClose) Close() error {
	err := r.ReadCloser.Close()
	return errors.Join(err, os.RemoveAll(r.dir))
}

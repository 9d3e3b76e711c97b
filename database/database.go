// Package database dumps MySQL/MariaDB, PostgreSQL and SQLite databases into
// a repository, one snapshot per database, and pipes such dumps back into a
// server.
//
// Dumps are made by each database's own tools (mariadb-dump or mysqldump,
// pg_dump and pg_dumpall, the sqlite3 shell) as plain SQL, and streamed into
// the repository as the tool writes them: nothing touches the disk except
// SQLite's consistent copy. A dump becomes a snapshot only when the tool
// exited 0 and its output ends with the tool's completion trailer; anything
// else (a refused password, a server that went away, a killed tool, output
// cut short) is an error naming the database, and no snapshot is written.
//
// Passwords reach the tools in files of mode 0600 inside a private
// temporary folder that is removed afterwards, never in arguments (which
// every user of the machine can read in ps) and never in logs.
package database

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/repo"
)

// Type is a kind of database server.
type Type string

// The database types escrow dumps.
const (
	MySQL    Type = "mysql" // MySQL and MariaDB
	Postgres Type = "postgres"
	SQLite   Type = "sqlite"
)

// ParseType accepts the usual spellings of a type: mysql, mariadb,
// postgres, postgresql, pgsql, sqlite, sqlite3.
func ParseType(s string) (Type, error) {
	switch s {
	case "mysql", "mariadb":
		return MySQL, nil
	case "postgres", "postgresql", "pgsql":
		return Postgres, nil
	case "sqlite", "sqlite3":
		return SQLite, nil
	}
	return "", fmt.Errorf("unknown database type %q (want mysql, postgres or sqlite)", s)
}

// Errors callers branch on. Every error from this package also names the
// database and the server.
var (
	// ErrToolMissing means a dump or client program is not installed.
	ErrToolMissing = errors.New("program not found")
	// ErrTruncated means a dump tool exited 0 but its output lacks the
	// trailer it writes last: the dump was cut short.
	ErrTruncated = errors.New("dump output cut short")
	// ErrNotEmpty means a restore target already holds tables.
	ErrNotEmpty = errors.New("target database is not empty")
	// ErrNoDatabase means a restore target does not exist.
	ErrNoDatabase = errors.New("target database does not exist")
)

// Error is a failure to dump or restore one database, or to reach its
// server.
type Error struct {
	Type     Type
	Database string // empty when the server as a whole failed
	Server   string // address, socket or file, for the reader of the message
	Err      error
}

func (e *Error) Error() string {
	what := string(e.Type)
	switch {
	case strings.Contains(e.Database, ", "): // several, from Dump's spec
		what += " databases " + e.Database
	case e.Database != "":
		what += fmt.Sprintf(" database %q", e.Database)
	default:
		what += " server"
	}
	if e.Server != "" {
		what += " on " + e.Server
	}
	return what + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Options apply to one Dump call.
type Options struct {
	// TempDir holds the private files: credential files and SQLite's
	// consistent copy, each in a folder of mode 0700 named for this
	// process and removed afterwards; Dump first removes the folders of
	// dumps killed part way (RemoveStale). The agent passes tmp/ in its
	// state directory; default os.TempDir().
	TempDir string
	// Tags are added to every snapshot, after the ones Dump sets.
	Tags []string
	// Host is the host name recorded in the snapshots (default: this
	// machine's).
	Host           string
	ProgramVersion string
	// Env is the environment of the dump tools; its PATH selects them.
	// Default os.Environ().
	Env    []string
	Logger *slog.Logger
	// Progress, when set, is called after every read from a dump tool, from
	// the goroutine that reads; keep it cheap.
	Progress func(Progress)
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Progress is how far one dump has streamed.
type Progress struct {
	Type     Type
	Database string
	Bytes    uint64
}

func (o *Options) fill() {
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.Env == nil {
		o.Env = os.Environ()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Result is the outcome of one dump.
type Result struct {
	Type     Type
	Database string // as the server names it; "globals" for PostgreSQL's roles
	Path     string // the file in the snapshot, e.g. /databases/mysql/shop.sql
	// Snapshot is the saved snapshot; nil when Err is set.
	Snapshot *repo.Snapshot
	Bytes    uint64
	Duration time.Duration
	Err      error
}

// DumpChunks returns the shape dumps are cut with: chunks of 192 KiB to
// 1 MiB, about 256 KiB on average, where files use restic's 1.5 MiB. A
// day's updates are rows scattered through the whole dump, which touch
// most 1.5 MiB chunks but fewer of these: bench/db.sh measured a nightly
// dump of a site-like database storing 0.4 times what restic stores. The
// first 192 KiB of a chunk are copied without computing the fingerprint
// (restic's shape skips a third of each chunk, this one three quarters),
// which takes cutting, the largest share of the CPU a mostly unchanged
// dump costs escrow, to 0.4 of restic's shape at the same size. The costs
// are 6 times as many index entries as at 1.5 MiB, a few percent more
// bytes than restic's shape scaled to 128 KiB after small edits, and
// about 60 KB more after an insertion of many KiB at one place.
// docs/databases.md has the numbers. Changing it makes the next dump of
// every database share nothing with the dumps before it.
func DumpChunks() chunk.Shape { return chunk.Shape{Min: 192 << 10, Bits: 16, Max: 1 << 20} }

// Dump dumps the databases spec names, each into a snapshot of its own with
// one file at DumpPath, tagged "db", "db:<type>" and "server:<version>" and
// then opts.Tags. Databases are dumped one after the other, so a small
// server carries one dump at a time.
//
// The caller holds the repository lock and has loaded the index, as for
// backup.Stream. One database failing does not stop the others: the result
// lists every database, and the error joins the failures (each an *Error).
// An error with no results means the server could not be reached or asked
// which databases it has.
func Dump(ctx context.Context, r *repo.Repository, spec Spec, opts Options) ([]Result, error) {
	opts.fill()
	if err := spec.validate(); err != nil {
		return nil, err
	}
	fail := func(err error) ([]Result, error) {
		// Name the databases the caller asked for, if it named them.
		names := strings.Join(spec.Databases, ", ")
		if spec.Type == SQLite {
			names = spec.sqliteName()
		}
		return nil, &Error{Type: spec.Type, Database: names, Server: spec.server(), Err: err}
	}
	// A dump killed part way leaves its private folder: the next dump
	// removes it.
	RemoveStale(opts.TempDir, opts.Logger)
	sec := newSecrets(opts.TempDir)
	defer sec.remove()
	t := &tools{env: opts.Env}
	var p *plan
	var err error
	switch spec.Type {
	case MySQL:
		p, err = planMySQL(ctx, spec, t, sec)
	case Postgres:
		p, err = planPostgres(ctx, spec, t, sec)
	case SQLite:
		p, err = planSQLite(ctx, spec, t, opts.TempDir)
	}
	if err != nil {
		return fail(err)
	}
	tags := append([]string{TagDB, TypeTag(spec.Type)}, p.tags...)
	var results []Result
	var errs []error
	for _, j := range p.jobs {
		res := runJob(ctx, r, spec, j, tags, &opts)
		if res.Err != nil {
			// Returned, not logged: the caller reports it once.
			errs = append(errs, res.Err)
		} else {
			opts.Logger.Info("database dumped", "type", spec.Type, "database", j.name,
				"snapshot", res.Snapshot.ID.Str(), "bytes", res.Bytes)
		}
		results = append(results, res)
	}
	return results, errors.Join(errs...)
}

// plan is what one server will dump: its version tags and one job per
// file.
type plan struct {
	tags []string
	jobs []job
}

// job is one dump: a tool whose output becomes one file.
type job struct {
	name string // the database, for messages and results
	file string // slash path below the snapshot root
	tags []string
	// start runs the tool. Closing the stream stops the tool if it still
	// runs and removes any temporary file it used.
	start func(ctx context.Context) (io.ReadCloser, error)
	// complete checks the end of the output for the tool's trailer.
	complete func(tail []byte) bool
}

// failedJob stands for a database that "all" listed but that cannot be
// dumped, so that it is reported rather than silently left out.
func failedJob(t Type, name string, err error) job {
	return job{
		name:  name,
		file:  strings.TrimPrefix(DumpPath(t, name), "/"),
		start: func(context.Context) (io.ReadCloser, error) { return nil, err },
	}
}

func runJob(ctx context.Context, r *repo.Repository, spec Spec, j job, tags []string, opts *Options) Result {
	started := opts.Now()
	res := Result{Type: spec.Type, Database: j.name, Path: "/" + j.file}
	fail := func(err error) Result {
		res.Err = &Error{Type: spec.Type, Database: j.name, Server: spec.server(), Err: err}
		res.Duration = opts.Now().Sub(started)
		return res
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	rc, err := j.start(ctx)
	if err != nil {
		return fail(err)
	}
	cr := &checkedReader{rd: rc, complete: j.complete}
	if opts.Progress != nil {
		cr.progress = func(n uint64) { opts.Progress(Progress{Type: spec.Type, Database: j.name, Bytes: n}) }
	}
	all := append(append(append([]string(nil), tags...), j.tags...), opts.Tags...)
	bres, err := backup.Stream(ctx, r, cr, j.file, backup.Options{
		Tags: all, Host: opts.Host, ProgramVersion: opts.ProgramVersion, Logger: opts.Logger, Now: opts.Now,
		Chunks: DumpChunks(),
		// A level per blob: fast for a first dump, so that compressing does
		// not hold the tool back, and for the changes of later dumps the
		// default, or "better" where it pays (~5% on row-heavy dumps such
		// as pgbench's), as those bytes are stored again with every dump.
		Compression: repo.CompressionStream,
	})
	// backup.Stream saves a snapshot only after a clean end of the output,
	// which the stream gives only when the tool exited 0 and the trailer
	// was there; Close then merely stops a tool that is still running.
	if cerr := rc.Close(); err == nil && cerr != nil {
		opts.Logger.Warn("cleaning up after a dump", "database", j.name, "err", cerr)
	}
	if err != nil {
		return fail(err)
	}
	res.Snapshot = bres.Snapshot
	res.Bytes = cr.n
	res.Duration = opts.Now().Sub(started)
	return res
}

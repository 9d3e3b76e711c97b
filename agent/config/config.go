// Package config reads the agent's configuration file (YAML; see
// docs/config.md).
//
// Parse checks everything that can be checked from the text alone; Load also
// checks the files and directories the configuration names. Both report every
// problem at once, each with its file, line, field and fix: a service that
// stops at the first of five mistakes costs its owner five restarts.
//
// A Config holds the names of secret files, never their contents: the
// secrets are read when they are needed (Password, S3Config), so a Config can
// be printed or logged whole.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a parsed configuration with its defaults filled in. The yaml
// tags name each field's key; decoding is done by hand (see decode.go) so
// that errors carry lines and plain words.
type Config struct {
	// File is the name the configuration was read from.
	File string `yaml:"-"`

	// Repository is "s3:https://HOST[:PORT]/BUCKET[/PREFIX]" (see S3Config)
	// or an absolute local directory.
	Repository   string `yaml:"repository"`
	PasswordFile string `yaml:"password_file"`
	// Host is recorded in snapshots; it defaults to os.Hostname().
	Host      string     `yaml:"host"`
	S3        S3         `yaml:"s3"`
	Sources   []Source   `yaml:"sources"`
	Databases []Database `yaml:"databases"`
	Schedule  Schedule   `yaml:"schedule"`
	Limits    Limits     `yaml:"limits"`
	StateDir  string     `yaml:"state_dir"`
	Log       Log        `yaml:"log"`
	// HeartbeatEvery is how often the agent writes its heartbeat to the
	// store (docs/monitoring.md).
	HeartbeatEvery time.Duration `yaml:"heartbeat_every"`
	Notify         Notify        `yaml:"notify"`
	// MetricsListen is [HOST]:PORT of the Prometheus endpoint; empty: off.
	MetricsListen string `yaml:"metrics_listen"`

	// lines maps field paths ("sources[0].path") to their line, so that
	// CheckFiles can point at the line to fix.
	lines map[string]int
}

// S3 holds what the repository address leaves out. Empty fields fall back
// to the AWS_* environment variables in S3Config.
type S3 struct {
	AccessKeyID         string `yaml:"access_key_id"`
	SecretAccessKeyFile string `yaml:"secret_access_key_file"`
	SessionTokenFile    string `yaml:"session_token_file"`
	Region              string `yaml:"region"`
	// CAFile is a PEM bundle trusted in addition to the system's CAs.
	CAFile string `yaml:"ca_file"`
}

// Source is a directory tree to back up.
type Source struct {
	Path        string   `yaml:"path"` // absolute and clean
	Exclude     []string `yaml:"exclude"`
	ExcludeFile []string `yaml:"exclude_file"`
	// Watch backs up changes as they happen; without it the source is only
	// read on each rescan.
	Watch         bool     `yaml:"watch"`
	OneFileSystem bool     `yaml:"one_file_system"`
	Tags          []string `yaml:"tags"`
	// FreshWithin is the target freshness; 0: twice schedule.rescan_every.
	FreshWithin time.Duration `yaml:"fresh_within"`
}

// DBType is the kind of database server a dump is taken from.
type DBType string

// The database types.
const (
	MySQL    DBType = "mysql" // MySQL and MariaDB
	Postgres DBType = "postgres"
	SQLite   DBType = "sqlite"
)

// Database is a database dumped into the repository on a schedule.
type Database struct {
	Type DBType `yaml:"type"`
	// Name is unique within the configuration; when the file gives none it
	// is the type, or type-host for a server on another machine.
	Name string `yaml:"name"`
	// Host is a host name or address; for postgres also a socket directory.
	Host         string        `yaml:"host"`
	Port         int           `yaml:"port"`   // 0: the dump tool's default
	Socket       string        `yaml:"socket"` // mysql only
	User         string        `yaml:"user"`
	PasswordFile string        `yaml:"password_file"`
	Databases    []string      `yaml:"databases"` // mysql and postgres: either Databases or All
	All          bool          `yaml:"all"`
	Path         string        `yaml:"path"` // sqlite only
	Every        time.Duration `yaml:"every"`
	// FreshWithin is the target freshness; 0: twice Every.
	FreshWithin time.Duration `yaml:"fresh_within"`
}

// Schedule decides when watched changes become snapshots.
type Schedule struct {
	// QuietPeriod: a snapshot is taken once no change has been seen for
	// this long...
	QuietPeriod time.Duration `yaml:"quiet_period"`
	// MaxDelay: ...or once the oldest pending change is this old, so a
	// site that never stops changing is still backed up. MaxDelay >=
	// QuietPeriod.
	MaxDelay time.Duration `yaml:"max_delay"`
	// RescanEvery is how often every source is read in full, to catch
	// what the watcher missed.
	RescanEvery time.Duration `yaml:"rescan_every"`
}

// Limits keep the agent light on a small server.
type Limits struct {
	UploadBandwidth int64  `yaml:"upload_bandwidth"` // bytes per second; 0: unlimited
	CPUPriority     string `yaml:"cpu_priority"`     // "low" (nice 10) or "normal"
	IOPriority      string `yaml:"io_priority"`      // "idle", "low" (best-effort, lowest level) or "normal"
	Parallelism     int    `yaml:"parallelism"`      // files read at once, 1 to 64
}

// Log sets the agent's log output.
type Log struct {
	Format string     `yaml:"format"` // "text" or "json"
	Level  slog.Level `yaml:"level"`
}

// Error is one problem in a configuration file. Parse, Load and CheckFiles
// return all the problems they find as Errors joined with errors.Join,
// ordered by line.
type Error struct {
	File  string
	Line  int    // 0 when the problem has no line, such as a missing field
	Field string // e.g. "sources[0].path"; empty for the file as a whole
	Msg   string // what is wrong and how to fix it
}

func (e *Error) Error() string {
	var b bytes.Buffer
	switch {
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		fmt.Fprintf(&b, "%s: ", e.File)
	case e.Line > 0:
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// The defaults of optional fields.
const (
	DefaultStateDir    = "/var/lib/escrow"
	DefaultQuietPeriod = 10 * time.Second
	DefaultMaxDelay    = 60 * time.Second
	DefaultRescanEvery = 6 * time.Hour
	DefaultEvery       = time.Hour
	DefaultParallelism = 2
	DefaultHeartbeat   = 5 * time.Minute
)

func defaults() Config {
	return Config{
		Schedule: Schedule{QuietPeriod: DefaultQuietPeriod, MaxDelay: DefaultMaxDelay, RescanEvery: DefaultRescanEvery},
		Limits:   Limits{CPUPriority: "low", IOPriority: "low", Parallelism: DefaultParallelism},
		StateDir: DefaultStateDir,
		Log:      Log{Format: "text", Level: slog.LevelInfo},

		HeartbeatEvery: DefaultHeartbeat,
		Notify:         Notify{RepeatAfter: DefaultRepeatAfter, Email: Email{TLS: "starttls"}},
	}
}

// Parse decodes and validates a configuration and fills in its defaults,
// without looking at the file system. name is used in error messages and
// kept as Config.File. On error the Config is nil.
func Parse(name string, data []byte) (*Config, error) {
	c, p := parse(name, data)
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads the configuration at path and checks it and the files it names
// (CheckFiles).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "the configuration file " + fileProblem(err)}
	}
	c, p := parse(path, data)
	// The file checks also run on a configuration that failed to parse, so
	// that one run names every problem; they skip fields already reported.
	if !p.syntax {
		c.checkFiles(p)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// parse fills in as much of the Config as it can and collects every problem.
func parse(name string, data []byte) (*Config, *problems) {
	c := defaults()
	c.File = name
	p := &problems{file: name, lines: map[string]int{}}
	c.lines = p.lines

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := dec.Decode(&doc)
	if errors.Is(err, io.EOF) {
		p.add(0, "", "the file is empty; start from `escrow config example`")
		p.syntax = true
		return &c, p
	}
	if err != nil {
		p.syntaxError(err, data)
		return &c, p
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		p.add(next.Line, "", `a second YAML document starts here ("---"); keep one document per file`)
	} else if !errors.Is(err, io.EOF) {
		p.syntaxError(err, data)
	}

	d := &decoder{problems: p}
	top := resolve(doc.Content[0])
	if top.Kind != yaml.MappingNode {
		p.add(top.Line, "", "expected key: value lines at the top level, got %s; start from `escrow config example`", describe(top))
		p.syntax = true
		return &c, p
	}
	d.mapping(top, "", d.topFields(&c))
	d.validate(&c)
	if c.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			p.add(0, "host", "this machine's host name is unknown (%v); set host", err)
		}
		c.Host = h
	}
	return &c, p
}

// Package setup holds what `escrow setup` decides: the answers that make an
// agent's installation (asked on a terminal, or read from a reseller's
// preseed file), the sites and databases found on the server, the files
// written from the answers (configuration and secrets), and where the
// recovery kit goes. Talking to the store, the repository and the service
// manager is the command's job; this package only prepares and records.
package setup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/escrow-backup/escrow/agent/config"
)

// Answers are everything setup needs. The preseed file is their YAML form
// (docs/resellers.md); the guided setup fills them by asking.
type Answers struct {
	// Repository is s3:https://HOST[:PORT]/BUCKET[/PREFIX] or an absolute
	// directory.
	Repository string `yaml:"repository"`
	S3         S3     `yaml:"s3"`
	// ObjectLock asks for a bucket with versioning, Object Lock (WORM) and
	// a default retention: setup creates the bucket so, or accepts one
	// that already is exactly so, and refuses any other.
	ObjectLock bool `yaml:"object_lock"`
	// ObjectLockRetention is how long each version is kept ("30d", "1y");
	// empty: DefaultRetention.
	ObjectLockRetention string `yaml:"object_lock_retention"`
	// ObjectLockMode is governance or compliance; empty: DefaultLockMode.
	ObjectLockMode string `yaml:"object_lock_mode"`
	// Password is the repository password. Empty: an existing password
	// file is kept, else a new password is generated on this host.
	Password string `yaml:"password"`
	// Host is recorded in snapshots; empty: this machine's name.
	Host string `yaml:"host"`
	// Discover adds the web roots and databases found on this server. Nil:
	// on when the answers name no source and no database.
	Discover  *bool      `yaml:"discover"`
	Sources   []Source   `yaml:"sources"`
	Databases []Database `yaml:"databases"`
	Kit       KitAnswers `yaml:"kit"`
	// Service installs and starts the system service; nil: yes.
	Service *bool `yaml:"service"`
	// FirstBackup runs the first backup before setup returns; nil: yes.
	FirstBackup *bool `yaml:"first_backup"`
	// StateDir is the agent's state directory; empty: the default.
	StateDir string `yaml:"state_dir"`
}

// The default retention of a bucket setup creates with Object Lock.
// Governance rather than compliance: the host's credential can shorten
// neither, and the owner (with the bypass right) can still remove a
// customer's data when the contract ends, which compliance forbids even to
// the owner until the retention runs out.
const (
	DefaultRetention = "30d"
	DefaultLockMode  = "governance"
)

// Retention returns the retention period and mode the answers ask for,
// with the defaults filled in.
func (a *Answers) Retention() (period, mode string) {
	period, mode = a.ObjectLockRetention, a.ObjectLockMode
	if period == "" {
		period = DefaultRetention
	}
	if mode == "" {
		mode = DefaultLockMode
	}
	return period, mode
}

// S3 is the credential for an s3: repository. The secret is written to a
// file readable by root only; the configuration names the file.
type S3 struct {
	AccessKeyID string `yaml:"access_key_id"`
	// SecretAccessKey, or SecretAccessKeyFile to read it from.
	SecretAccessKey     string `yaml:"secret_access_key"`
	SecretAccessKeyFile string `yaml:"secret_access_key_file"`
	Region              string `yaml:"region"`
	CAFile              string `yaml:"ca_file"`
}

// Source is a directory to back up, as in the agent's configuration.
type Source struct {
	Path    string   `yaml:"path"`
	Exclude []string `yaml:"exclude"`
	// Watch: nil means true.
	Watch         *bool    `yaml:"watch"`
	OneFileSystem bool     `yaml:"one_file_system"`
	Tags          []string `yaml:"tags"`
}

// Database is a database to dump, as in the agent's configuration, except
// that the password may be given inline: setup writes it to a file.
type Database struct {
	Type         string   `yaml:"type"`
	Name         string   `yaml:"name"`
	Host         string   `yaml:"host"`
	Port         int      `yaml:"port"`
	Socket       string   `yaml:"socket"`
	User         string   `yaml:"user"`
	Password     string   `yaml:"password"`
	PasswordFile string   `yaml:"password_file"`
	Databases    []string `yaml:"databases"`
	All          bool     `yaml:"all"`
	Path         string   `yaml:"path"`
	Every        string   `yaml:"every"`
	// From is the site configuration it was found in; not in the preseed.
	From string `yaml:"-"`
}

// KitAnswers say where the recovery kit goes.
type KitAnswers struct {
	// File is written with mode 0600.
	File string `yaml:"file"`
	// Command is run (no shell) with the kit on its standard input, never
	// on its command line.
	Command []string `yaml:"command"`
	// IncludeCredentials puts the S3 secret in the kit, so the kit alone
	// restores; nil: yes.
	IncludeCredentials *bool `yaml:"include_credentials"`
	// Confirm records the kit as stored off the server; nil: yes when a
	// command took it (it leaves the server), no for a file.
	Confirm *bool `yaml:"confirm"`
}

// On returns *b, or def when b is nil.
func On(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

// PreseedError is a problem in a preseed file, at a line when known.
type PreseedError struct {
	File string
	Line int
	Msg  string
}

func (e *PreseedError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Preseed is a parsed preseed file with the lines of its fields, so that
// later checks (the configuration the answers make) can point into it.
type Preseed struct {
	Answers
	File  string
	lines map[string]int // "sources[1].path" → line
}

// Line returns the line of a field path in the preseed, or 0.
func (p *Preseed) Line(field string) int {
	for f := field; f != ""; {
		if l, ok := p.lines[f]; ok {
			return l
		}
		i := strings.LastIndexAny(f, ".[")
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

// maxPreseed bounds what is read of a preseed file.
const maxPreseed = 1 << 20

// ReadPreseed reads and parses a preseed file.
func ReadPreseed(name string) (*Preseed, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, &PreseedError{File: name, Msg: fmt.Sprintf("cannot read the preseed file: %v", errors.Unwrap(err))}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPreseed+1))
	if err != nil {
		return nil, &PreseedError{File: name, Msg: fmt.Sprintf("cannot read the preseed file: %v", err)}
	}
	if len(data) > maxPreseed {
		return nil, &PreseedError{File: name, Msg: "larger than 1 MiB; a preseed file holds a few dozen lines"}
	}
	return ParsePreseed(name, data)
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// ParsePreseed parses a preseed file: unknown fields and values of the
// wrong kind are errors with their line, all of them at once.
func ParsePreseed(name string, data []byte) (*Preseed, error) {
	p := &Preseed{File: name, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlErrors(name, err)
	}
	if len(doc.Content) == 0 {
		return nil, &PreseedError{File: name, Msg: "the file is empty; docs/resellers.md has a full example"}
	}
	if doc.Content[0].Kind != yaml.MappingNode {
		return nil, &PreseedError{File: name, Line: doc.Content[0].Line, Msg: "expected key: value lines at the top level; docs/resellers.md has a full example"}
	}
	recordLines(doc.Content[0], "", p.lines)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&p.Answers); err != nil {
		return nil, yamlErrors(name, err)
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return p, nil
}

// yamlErrors turns yaml's messages ("line 4: field foo not found in type
// setup.Answers") into PreseedErrors without Go type names.
func yamlErrors(name string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	var errs []error
	for _, m := range msgs {
		e := &PreseedError{File: name, Msg: strings.TrimPrefix(m, "yaml: ")}
		if g := yamlLine.FindStringSubmatch(m); g != nil {
			e.Line, _ = strconv.Atoi(g[1])
			e.Msg = g[2]
		}
		if i := strings.Index(e.Msg, " in type "); i >= 0 {
			e.Msg = e.Msg[:i] + " (docs/resellers.md lists the fields)"
		}
		e.Msg = strings.ReplaceAll(e.Msg, "!!", "")
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// recordLines maps each field path below n to its line.
func recordLines(n *yaml.Node, path string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			lines[p] = n.Content[i].Line
			recordLines(n.Content[i+1], p, lines)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			lines[p] = v.Line
			recordLines(v, p, lines)
		}
	}
}

// check finds what the configuration's own validation cannot: setup-only
// fields and secrets given twice. A missing repository is left to that
// validation, since --repo and $ESCROW_REPOSITORY may still give it.
func (p *Preseed) check() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &PreseedError{File: p.File, Line: p.Line(field), Msg: field + ": " + fmt.Sprintf(format, args...)})
	}
	a := &p.Answers
	if a.S3.SecretAccessKey != "" && a.S3.SecretAccessKeyFile != "" {
		bad("s3.secret_access_key_file", "give secret_access_key or secret_access_key_file, not both")
	}
	if len(a.Kit.Command) > 0 && a.Kit.Command[0] == "" {
		bad("kit.command", "the first entry must be the program to run")
	}
	for i, db := range a.Databases {
		if db.Password != "" && db.PasswordFile != "" {
			bad(fmt.Sprintf("databases[%d].password_file", i), "give password or password_file, not both")
		}
	}
	return errors.Join(errs...)
}

// FromConfig returns the answers that an existing configuration gave, as
// the defaults of a second run. Secret files are read back, so the files
// written again hold the same secrets.
func FromConfig(c *config.Config) Answers {
	a := Answers{Repository: c.Repository, StateDir: c.StateDir}
	// An empty host means this machine's name, which Parse filled in.
	if h, err := os.Hostname(); err == nil && c.Host != h {
		a.Host = c.Host
	}
	if c.StateDir == config.DefaultStateDir {
		a.StateDir = ""
	}
	a.S3 = S3{AccessKeyID: c.S3.AccessKeyID, Region: c.S3.Region, CAFile: c.S3.CAFile}
	if c.S3.SecretAccessKeyFile != "" {
		a.S3.SecretAccessKeyFile = c.S3.SecretAccessKeyFile
	}
	for _, s := range c.Sources {
		w := s.Watch
		a.Sources = append(a.Sources, Source{Path: s.Path, Exclude: s.Exclude, Watch: &w, OneFileSystem: s.OneFileSystem, Tags: s.Tags})
	}
	for _, db := range c.Databases {
		every := ""
		if db.Every != config.DefaultEvery {
			every = db.Every.String()
		}
		a.Databases = append(a.Databases, Database{
			Type: string(db.Type), Name: db.Name, Host: db.Host, Port: db.Port, Socket: db.Socket, User: db.User,
			PasswordFile: db.PasswordFile, Databases: db.Databases, All: db.All, Path: db.Path, Every: every,
		})
	}
	return a
}

package database

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Spec says which databases to dump, or which one to restore into, and how
// to reach the server.
type Spec struct {
	Type Type
	// Host is a name or address; empty for the local socket.
	Host string
	Port int // 0 for the default
	// Socket is MySQL's socket file, or PostgreSQL's socket folder (a
	// socket file there is also accepted).
	Socket string
	User   string
	// Password reaches the tools through a file of mode 0600; String and
	// LogValue never show it. Empty for socket or peer authentication.
	Password string
	// Databases are dumped in this order (for a restore, the first is the
	// target). All dumps every database instead, except the servers' own
	// (see docs/databases.md).
	Databases []string
	All       bool
	// NoGlobals skips PostgreSQL's roles and tablespaces (pg_dumpall
	// --globals-only), which are otherwise dumped once per Dump.
	NoGlobals bool
	// Path is the SQLite database file (absolute).
	Path string
	// Name names an SQLite dump; default: the file name without its
	// extension.
	Name string
}

// String describes the spec for messages; it never includes the password.
func (s Spec) String() string {
	if s.Type == SQLite {
		return fmt.Sprintf("sqlite %s (as %s)", s.Path, s.sqliteName())
	}
	what := strings.Join(s.Databases, ",")
	if s.All {
		what = "all databases"
	}
	out := fmt.Sprintf("%s %s on %s", s.Type, what, s.server())
	if s.User != "" {
		out += " as " + s.User
	}
	if s.Password != "" {
		out += " (password set)"
	}
	return out
}

// GoString keeps %#v from printing the password.
func (s Spec) GoString() string { return "database.Spec{" + s.String() + "}" }

// LogValue keeps the password out of structured logs.
func (s Spec) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("type", string(s.Type))}
	if s.Type == SQLite {
		attrs = append(attrs, slog.String("path", s.Path), slog.String("name", s.sqliteName()))
	} else {
		attrs = append(attrs, slog.String("server", s.server()), slog.String("user", s.User),
			slog.Any("databases", s.Databases), slog.Bool("all", s.All), slog.Bool("password_set", s.Password != ""))
	}
	return slog.GroupValue(attrs...)
}

// server names where the databases live, for messages.
func (s Spec) server() string {
	switch {
	case s.Type == SQLite:
		return s.Path
	case s.Socket != "":
		return s.Socket
	case s.Host == "" && s.Port == 0:
		return "the local socket"
	}
	host := s.Host
	if host == "" {
		host = "localhost"
	}
	if s.Port == 0 {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(s.Port))
}

func (s Spec) validate() error {
	switch s.Type {
	case MySQL, Postgres:
		if s.All && len(s.Databases) > 0 {
			return errors.New("give either databases or all, not both")
		}
		if !s.All && len(s.Databases) == 0 {
			return fmt.Errorf("%s: no database given (name one, or dump all)", s.Type)
		}
		for _, db := range s.Databases {
			if err := checkName(db); err != nil {
				return err
			}
		}
		if s.Port < 0 || s.Port > 65535 {
			return fmt.Errorf("invalid port %d", s.Port)
		}
		if s.Type == Postgres && strings.ContainsAny(s.Password, "\r\n") {
			return errors.New("a PostgreSQL password cannot contain a line break (libpq's password file cannot hold it)")
		}
	case SQLite:
		if s.Path == "" || !filepath.IsAbs(s.Path) {
			return fmt.Errorf("sqlite: the database file must be an absolute path, got %q", s.Path)
		}
		if err := checkName(s.sqliteName()); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown database type %q", s.Type)
	}
	return nil
}

// checkName rejects names no server uses and that would read as an option
// to the dump tools.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, "\x00\n\r") {
		return fmt.Errorf("invalid database name %q", name)
	}
	return nil
}

func (s Spec) sqliteName() string {
	if s.Name != "" {
		return s.Name
	}
	base := filepath.Base(s.Path)
	name := strings.TrimLeft(strings.TrimSuffix(base, filepath.Ext(base)), ".")
	if name == "" {
		name = "database"
	}
	return name
}

// Tags set on every dump snapshot, besides "server:<product>-<version>".
const (
	TagDB      = "db"
	TagGlobals = "db:globals" // PostgreSQL's roles and tablespaces
)

// TypeTag is the tag of a dump of type t: "db:mysql", "db:postgres" or
// "db:sqlite".
func TypeTag(t Type) string { return "db:" + string(t) }

// GlobalsName is the name under which PostgreSQL's globals are stored.
const GlobalsName = "globals"

// DumpPath is where the dump of database name of type t lives in its
// snapshot: /databases/<type>/<name>.sql. Characters that cannot be part of
// a file name are percent-escaped.
func DumpPath(t Type, name string) string {
	return "/databases/" + string(t) + "/" + escapeName(name) + ".sql"
}

// ParseDumpPath is the inverse of DumpPath.
func ParseDumpPath(p string) (Type, string, bool) {
	rest, ok := strings.CutPrefix(path.Clean(p), "/databases/")
	if !ok {
		return "", "", false
	}
	typ, file, ok := strings.Cut(rest, "/")
	if !ok || strings.Contains(file, "/") || !strings.HasSuffix(file, ".sql") {
		return "", "", false
	}
	t, err := ParseType(typ)
	if err != nil || string(t) != typ {
		return "", "", false
	}
	return t, unescapeName(strings.TrimSuffix(file, ".sql")), true
}

func escapeName(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '/' || c == '%' || c < 0x20 || (c == '.' && (name == "." || name == "..")) {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

var escaped = regexp.MustCompile(`%[0-9A-F]{2}`)

func unescapeName(s string) string {
	return escaped.ReplaceAllStringFunc(s, func(m string) string {
		v, _ := strconv.ParseUint(m[1:], 16, 8)
		return string([]byte{byte(v)})
	})
}

// versionTag makes the tag recording a server's version, e.g.
// "server:mariadb-10.11.6": restic snapshots have no free-form field, and a
// tag shows in every listing.
func versionTag(product, version string) string {
	v := versionNumber.FindString(version)
	if v == "" {
		v = "unknown"
	}
	return "server:" + product + "-" + v
}

var versionNumber = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*`)

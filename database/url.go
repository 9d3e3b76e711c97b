package database

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// ParseURL reads the address of a database to restore into:
//
//	mysql://user@host[:port]/db                  (mariadb:// also)
//	mysql:///db?socket=/run/mysqld/mysqld.sock
//	postgres://user@host[:port]/db               (postgresql:// also)
//	postgres:///db?host=/var/run/postgresql      (a socket folder)
//	sqlite:///abs/path.sqlite
//
// A password in the URL is refused: a command line is visible to every
// user of the machine.
func ParseURL(s string) (Spec, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Spec{}, fmt.Errorf("database address: %w", err)
	}
	t, err := ParseType(u.Scheme)
	if err != nil {
		return Spec{}, fmt.Errorf("database address %q: %w", redactURL(u), err)
	}
	if u.Opaque != "" {
		return Spec{}, fmt.Errorf("database address %q: write %s://[user@]host/database", redactURL(u), u.Scheme)
	}
	spec := Spec{Type: t}
	if u.User != nil {
		if _, set := u.User.Password(); set {
			return Spec{}, fmt.Errorf("database address %q holds a password, which any user of this machine could read on the command line: give it in a file instead", redactURL(u))
		}
		spec.User = u.User.Username()
	}
	if t == SQLite {
		if u.Host != "" || spec.User != "" || !filepath.IsAbs(u.Path) || len(u.Query()) > 0 {
			return Spec{}, fmt.Errorf("database address %q: write sqlite:///absolute/path/to/file.sqlite", s)
		}
		spec.Path = filepath.Clean(u.Path)
		return spec, nil
	}
	spec.Host = u.Hostname()
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return Spec{}, fmt.Errorf("database address %q: invalid port %q", s, p)
		}
		spec.Port = n
	}
	for k, v := range u.Query() {
		switch {
		case k == "socket" || (k == "host" && t == Postgres):
			spec.Socket = v[len(v)-1]
		default:
			known := "socket"
			if t == Postgres {
				known = "host, socket"
			}
			return Spec{}, fmt.Errorf("database address %q: unknown parameter %q (known: %s)", s, k, known)
		}
	}
	if spec.Socket != "" && !filepath.IsAbs(spec.Socket) {
		return Spec{}, fmt.Errorf("database address %q: the socket must be an absolute path", s)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		return Spec{}, fmt.Errorf("database address %q names no database: write %s://[user@]host/DATABASE", s, u.Scheme)
	}
	if err := checkName(db); err != nil {
		return Spec{}, err
	}
	spec.Databases = []string{db}
	return spec, nil
}

func redactURL(u *url.URL) string { return u.Redacted() }

package database

import (
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Found is a database named in a site's configuration.
type Found struct {
	Spec Spec
	// File is the configuration file it was read from.
	File string
}

// discoverSkip are folders that hold no configuration but may hold a great
// many files.
var discoverSkip = map[string]bool{
	".git": true, ".svn": true, ".hg": true, "node_modules": true, "vendor": true,
	"uploads": true, "cache": true,
}

// discoverDepth bounds how deep below root configuration is looked for.
const discoverDepth = 6

// Discover looks below root for the database settings of the usual PHP
// applications: WordPress's wp-config.php (DB_NAME, DB_USER, DB_PASSWORD,
// DB_HOST as host, host:port, host:/socket or [ipv6]:port), and .env files
// with .env.local overriding them (Laravel's DB_CONNECTION, DB_HOST,
// DB_PORT, DB_SOCKET, DB_DATABASE, DB_USERNAME, DB_PASSWORD, or a
// DATABASE_URL or DB_URL). It returns each database once, in the order
// found. Files it cannot read are skipped. It logs nothing: the specs hold
// passwords.
func Discover(root string) ([]Found, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// A deployment's "current" is often a link to the live release.
	if root, err = filepath.EvalSymlinks(root); err != nil {
		return nil, err
	}
	var found []Found
	seen := map[string]bool{}
	add := func(f Found) {
		k := f.Spec.key()
		if !seen[k] {
			seen[k] = true
			found = append(found, f)
		}
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return nil // unreadable: skip, as the backup would report it
		}
		if d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			if p != root && (discoverSkip[d.Name()] || strings.Count(rel, string(filepath.Separator)) >= discoverDepth) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() != "wp-config.php" && d.Name() != ".env" {
			return nil
		}
		// Deployments link .env to a shared copy: follow a link to a file.
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		switch d.Name() {
		case "wp-config.php":
			data, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			if spec, ok := parseWPConfig(data); ok {
				add(Found{Spec: spec, File: p})
			}
		case ".env":
			data, err := os.ReadFile(p)
			if err != nil {
				return nil
			}
			vars := parseDotenv(string(data))
			file := p
			// Symfony's .env.local overrides .env on this machine.
			if local, err := os.ReadFile(p + ".local"); err == nil {
				for k, v := range parseDotenv(string(local)) {
					vars[k] = v
				}
				file = p + ".local"
			}
			if spec, ok := specFromEnv(vars, filepath.Dir(p)); ok {
				add(Found{Spec: spec, File: file})
			}
		}
		return nil
	})
	return found, err
}

// key identifies the database a spec points at, ignoring credentials.
func (s Spec) key() string {
	return strings.Join([]string{string(s.Type), s.Host, strconv.Itoa(s.Port), s.Socket, strings.Join(s.Databases, ","), s.Path}, "\x00")
}

// parseWPConfig reads the DB_* constants that wp-config.php defines with
// string literals, ignoring commented-out lines.
func parseWPConfig(data []byte) (Spec, bool) {
	toks := phpTokens(string(data))
	defs := map[string]string{}
	for i := 0; i+5 < len(toks); i++ {
		t := toks[i]
		if t.kind != 'i' || !strings.EqualFold(t.val, "define") {
			continue
		}
		if toks[i+1].is('(') && toks[i+2].kind == 's' && toks[i+3].is(',') && toks[i+4].kind == 's' && toks[i+5].is(')') {
			defs[toks[i+2].val] = toks[i+4].val
		}
	}
	name, ok := defs["DB_NAME"]
	if !ok || name == "" {
		return Spec{}, false
	}
	spec := Spec{Type: MySQL, User: defs["DB_USER"], Password: defs["DB_PASSWORD"], Databases: []string{name}}
	spec.Host, spec.Port, spec.Socket = parseWPHost(defs["DB_HOST"])
	return spec, true
}

// parseWPHost splits DB_HOST as WordPress's wpdb::parse_db_host does:
// "host", "host:port", "host:/socket", "host:port:/socket", "[::1]:port",
// with PHP's "p:" (persistent) prefix allowed. mysqli, like the mysql
// tools, reaches "localhost" through the socket.
func parseWPHost(h string) (host string, port int, socket string) {
	h = strings.TrimPrefix(strings.TrimSpace(h), "p:")
	if i := strings.Index(h, ":/"); i >= 0 {
		socket = h[i+1:]
		h = h[:i]
	}
	if strings.Count(h, ":") > 1 {
		// IPv6, bracketed when a port follows.
		if rest, ok := strings.CutPrefix(h, "["); ok {
			addr, p, _ := strings.Cut(rest, "]")
			host = addr
			port, _ = strconv.Atoi(strings.TrimPrefix(p, ":"))
			return host, port, socket
		}
		return h, 0, socket
	}
	host, p, _ := strings.Cut(h, ":")
	port, _ = strconv.Atoi(p)
	return host, port, socket
}

// phpToken is a token of PHP source, as far as reading define() calls
// needs: 's' a string literal (unescaped), 'i' an identifier, 'p' one
// character of punctuation.
type phpToken struct {
	kind byte
	val  string
}

func (t phpToken) is(c byte) bool { return t.kind == 'p' && t.val == string(c) }

func phpTokens(src string) []phpToken {
	var toks []phpToken
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#' || (c == '/' && i+1 < len(src) && src[i+1] == '/'):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return toks
			}
			i += end + 4
		case c == '\'' || c == '"':
			val, n := phpString(src[i:])
			toks = append(toks, phpToken{'s', val})
			i += n
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(src) && (src[j] == '_' || src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z' || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			toks = append(toks, phpToken{'i', src[i:j]})
			i = j
		default:
			toks = append(toks, phpToken{'p', string(c)})
			i++
		}
	}
	return toks
}

// phpString reads the quoted literal at the start of s and returns its
// value and length. Single quotes know only \' and \\; double quotes also
// the usual control escapes (variables are not expanded: wp-config.php
// credentials are literals).
func phpString(s string) (string, int) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1
		case c == '\\' && i+1 < len(s):
			n := s[i+1]
			switch {
			case n == q || n == '\\':
				b.WriteByte(n)
			case q == '"' && n == 'n':
				b.WriteByte('\n')
			case q == '"' && n == 't':
				b.WriteByte('\t')
			case q == '"' && n == 'r':
				b.WriteByte('\r')
			case q == '"' && n == '$':
				b.WriteByte('$')
			default:
				b.WriteByte('\\')
				b.WriteByte(n)
			}
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), len(s)
}

// parseDotenv reads KEY=VALUE lines as phpdotenv (Laravel) and Symfony do:
// "export " prefixes, # comments, single quotes taken literally, double
// quotes with escapes, quoted values spanning lines, and ${VAR} (not $VAR)
// expanded from earlier lines in unquoted and double-quoted values.
func parseDotenv(src string) map[string]string {
	vars := map[string]string{}
	eol := func(p int) int {
		if e := strings.IndexByte(src[p:], '\n'); e >= 0 {
			return p + e
		}
		return len(src)
	}
	for p := 0; p < len(src); {
		line := src[p:eol(p)]
		key, _, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(key), "export "))
		if !ok || key == "" || strings.HasPrefix(key, "#") || strings.ContainsAny(key, " \t\"'") {
			p = eol(p) + 1
			continue
		}
		v := p + strings.IndexByte(line, '=') + 1
		for v < len(src) && (src[v] == ' ' || src[v] == '\t') {
			v++
		}
		var val string
		switch {
		case v < len(src) && src[v] == '\'':
			e := strings.IndexByte(src[v+1:], '\'')
			if e < 0 {
				e = len(src) - v - 1
			}
			val, v = src[v+1:v+1+e], v+e+2
		case v < len(src) && src[v] == '"':
			var n int
			val, n = phpString(src[v:])
			val, v = expandVars(val, vars), v+n
		default:
			e := eol(v)
			val = src[v:e]
			if c := strings.Index(val, " #"); c >= 0 {
				val = val[:c]
			}
			val, v = expandVars(strings.TrimSpace(val), vars), e
		}
		vars[key] = val
		p = eol(min(v, len(src))) + 1
	}
	return vars
}

// expandVars replaces ${NAME} with an earlier variable's value.
func expandVars(s string, vars map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return b.String() + s
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return b.String() + s
		}
		b.WriteString(s[:i])
		b.WriteString(vars[s[i+2:i+j]])
		s = s[i+j+1:]
	}
}

// specFromEnv makes a spec from a .env file's variables; dir is the
// file's folder, against which an SQLite path is resolved.
func specFromEnv(vars map[string]string, dir string) (Spec, bool) {
	for _, k := range []string{"DB_URL", "DATABASE_URL"} {
		if u := vars[k]; u != "" {
			return specFromConfigURL(u, dir)
		}
	}
	var t Type
	switch strings.ToLower(vars["DB_CONNECTION"]) {
	case "mysql", "mariadb":
		t = MySQL
	case "pgsql", "postgres", "postgresql":
		t = Postgres
	case "sqlite":
		t = SQLite
	default:
		return Spec{}, false
	}
	db := vars["DB_DATABASE"]
	if t == SQLite {
		if db == "" {
			db = filepath.Join("database", "database.sqlite") // Laravel's default
		}
		if db == ":memory:" {
			return Spec{}, false
		}
		if !filepath.IsAbs(db) {
			db = filepath.Join(dir, db)
		}
		return Spec{Type: SQLite, Path: filepath.Clean(db)}, true
	}
	if db == "" {
		return Spec{}, false
	}
	spec := Spec{Type: t, Host: vars["DB_HOST"], User: vars["DB_USERNAME"], Password: vars["DB_PASSWORD"],
		Socket: vars["DB_SOCKET"], Databases: []string{db}}
	spec.Port, _ = strconv.Atoi(vars["DB_PORT"])
	if t == Postgres && strings.HasPrefix(spec.Host, "/") {
		spec.Socket, spec.Host = spec.Host, "" // a socket folder
	}
	return spec, true
}

// specFromConfigURL reads a DATABASE_URL as Doctrine and Laravel write it:
// mysql://user:pass@host:3306/db?serverVersion=8.0&charset=utf8mb4,
// postgresql://..., sqlite:///%kernel.project_dir%/var/data.db. Unlike a
// restore address it may hold the password: it comes from a file.
func specFromConfigURL(raw, dir string) (Spec, bool) {
	raw = strings.ReplaceAll(raw, "%kernel.project_dir%", dir)
	u, err := url.Parse(raw)
	if err != nil {
		return Spec{}, false
	}
	t, err := ParseType(strings.TrimPrefix(u.Scheme, "pdo-"))
	if err != nil {
		return Spec{}, false
	}
	if t == SQLite {
		p := u.Path
		if u.Host != "" { // sqlite://relative/path
			p = u.Host + u.Path
		}
		if p == "" || p == ":memory:" {
			return Spec{}, false
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return Spec{Type: SQLite, Path: filepath.Clean(p)}, true
	}
	spec := Spec{Type: t, Host: u.Hostname()}
	if u.User != nil {
		spec.User = u.User.Username()
		spec.Password, _ = u.User.Password()
	}
	spec.Port, _ = strconv.Atoi(u.Port())
	q := u.Query()
	for _, k := range []string{"unix_socket", "socket", "host"} {
		if v := q.Get(k); v != "" && strings.HasPrefix(v, "/") {
			spec.Socket = v
		}
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		return Spec{}, false
	}
	spec.Databases = []string{db}
	return spec, true
}

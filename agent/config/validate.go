package config

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/remote/s3"
)

// validate checks what involves more than one field, and required fields.
// Fields whose value was already reported are skipped.
func (d *decoder) validate(c *Config) {
	d.validateRepository(c)
	if c.PasswordFile == "" && !d.bad["password_file"] {
		d.add(0, "password_file", "missing; give the file holding the repository password, e.g. password_file: /etc/escrow/password")
	}
	d.validateSources(c)
	d.validateDatabases(c)
	if len(c.Sources) == 0 && len(c.Databases) == 0 && !d.bad["sources"] && !d.bad["databases"] {
		d.add(0, "", "nothing to back up: add a directory under sources: or a database under databases:")
	}
	d.validateSchedule(c)
	d.validateInsideSources(c)
	d.validateNotify(c)
}

func (d *decoder) validateRepository(c *Config) {
	r := c.Repository
	switch {
	case d.bad["repository"]:
	case r == "":
		d.add(0, "repository", "missing; give where backups go, e.g. repository: s3:https://s3.example.com/bucket/site1 or repository: /srv/escrow-repo")
	case strings.HasPrefix(r, "s3:"):
		// The same parser opens the repository, so what passes here opens.
		if _, err := s3.ParseURL(r); err != nil {
			d.at("repository", "%v", err)
		}
		if c.S3.CAFile != "" && strings.HasPrefix(r, "s3:http://") {
			d.at("s3.ca_file", "the repository address uses http://, which has no TLS to verify; use https:// or remove ca_file")
		}
	case filepath.IsAbs(r):
		c.Repository = filepath.Clean(r)
	default:
		// Only the scheme is echoed: the rest may hold credentials.
		if scheme, _, ok := strings.Cut(r, ":"); ok && !strings.Contains(scheme, "/") {
			d.at("repository", "unknown kind of repository %q; use s3:https://HOST/BUCKET[/PREFIX] or an absolute directory path", scheme+":")
		} else {
			d.at("repository", "%q is not an absolute path; a local repository is a directory path starting with /", r)
		}
	}
}

func (d *decoder) validateSources(c *Config) {
	for i, s := range c.Sources {
		p := fmt.Sprintf("sources[%d]", i)
		if d.bad[p] {
			continue
		}
		if s.Path == "" && !d.bad[p+".path"] {
			d.add(d.lines[p], p+".path", "missing; give the directory to back up, e.g. path: /var/www/site")
		}
		for j, pat := range s.Exclude {
			if _, err := backup.NewExcluder([]string{pat}); err != nil {
				d.at(fmt.Sprintf("%s.exclude[%d]", p, j), "%q is not a valid pattern (check its [ ] and \\)", pat)
			}
		}
		for j, tag := range s.Tags {
			if strings.Contains(tag, ",") {
				d.at(fmt.Sprintf("%s.tags[%d]", p, j), "%q contains a comma; give each tag as its own list entry", tag)
			}
		}
		// One directory inside another would be backed up twice, and its
		// changes would race between two watchers.
		for j, o := range c.Sources[:i] {
			if s.Path == "" || o.Path == "" || d.bad[p+".path"] {
				continue
			}
			switch {
			case s.Path == o.Path:
				d.at(p+".path", "%s is already sources[%d]; remove one of them", s.Path, j)
			case within(s.Path, o.Path):
				d.at(p+".path", "%s is inside sources[%d].path %s, which already covers it; remove it, or exclude it there to give it its own settings", s.Path, j, o.Path)
			case within(o.Path, s.Path):
				d.at(p+".path", "%s contains sources[%d].path %s; remove that one, or exclude it here to give it its own settings", s.Path, j, o.Path)
			}
		}
	}
}

func (d *decoder) validateDatabases(c *Config) {
	names := map[string]int{}
	for i := range c.Databases {
		db := &c.Databases[i]
		p := fmt.Sprintf("databases[%d]", i)
		if d.bad[p] {
			continue
		}
		switch db.Type {
		case "":
			if !d.bad[p+".type"] {
				d.add(d.lines[p], p+".type", "missing; one of mysql (also for MariaDB), postgres, sqlite")
			}
		case MySQL, Postgres:
			if db.Path != "" {
				d.at(p+".path", "only for sqlite; a %s database is reached by host (or socket) and named in databases:", db.Type)
			}
			switch {
			case len(db.Databases) == 0 && !db.All && !d.bad[p+".databases"]:
				d.add(d.lines[p], p, "say which databases to dump: databases: [NAME, ...] or all: true")
			case len(db.Databases) > 0 && db.All:
				d.at(p+".all", "give either databases: or all: true, not both")
			}
			if db.Type == MySQL && db.Host != "" && db.Socket != "" {
				d.at(p+".socket", "give host or socket, not both")
			}
			if db.Type == Postgres && db.Socket != "" {
				d.at(p+".socket", "only for mysql; for postgres give the socket's directory as host")
			}
		case SQLite:
			if db.Path == "" && !d.bad[p+".path"] {
				d.add(d.lines[p], p+".path", "missing; give the SQLite database file, e.g. path: /var/www/app/data.sqlite")
			}
			for _, f := range []struct {
				key  string
				used bool
			}{
				{"host", db.Host != ""}, {"port", db.Port != 0}, {"socket", db.Socket != ""}, {"user", db.User != ""},
				{"password_file", db.PasswordFile != ""}, {"databases", len(db.Databases) > 0}, {"all", db.All},
			} {
				if f.used {
					d.at(p+"."+f.key, "not used for sqlite, which reads the file at path; remove it")
				}
			}
		}
		if db.Name == "" {
			db.Name = derivedName(db)
		} else if !validName(db.Name) {
			d.at(p+".name", "%q is not a usable name; use letters, digits, '.', '_' and '-', starting with a letter or digit", db.Name)
			continue
		}
		if db.Type == "" {
			continue
		}
		if j, ok := names[db.Name]; ok {
			how := "set a different name: on one of them"
			if _, named := d.lines[p+".name"]; !named {
				how = "the name comes from the type and host; " + how
			}
			d.add(d.lines[p], p+".name", "%q is also the name of databases[%d]; names must be unique: %s", db.Name, j, how)
			continue
		}
		names[db.Name] = i
	}
}

func (d *decoder) validateSchedule(c *Config) {
	s := c.Schedule
	if d.bad["schedule.quiet_period"] || d.bad["schedule.max_delay"] || s.MaxDelay >= s.QuietPeriod {
		return
	}
	field := "schedule.max_delay"
	if _, given := d.lines[field]; !given {
		field = "schedule.quiet_period"
	}
	d.at(field, "max_delay (%s) must be at least quiet_period (%s): a snapshot is due max_delay after the first change even if changes continue", formatDuration(s.MaxDelay), formatDuration(s.QuietPeriod))
}

// validateInsideSources refuses a state directory or local repository inside
// a watched tree: every backup would write to it, which would be a change,
// which would start another backup.
func (d *decoder) validateInsideSources(c *Config) {
	inner := map[string]string{"state_dir": c.StateDir}
	if filepath.IsAbs(c.Repository) && !d.bad["repository"] {
		inner["repository"] = c.Repository
	}
	for i, s := range c.Sources {
		if s.Path == "" {
			continue
		}
		ex, err := backup.NewExcluder(s.Exclude)
		if err != nil {
			continue
		}
		for _, field := range []string{"repository", "state_dir"} {
			dir := inner[field]
			if dir != "" && (dir == s.Path || within(dir, s.Path)) && !ex.Excluded(dir) {
				d.at(field, "%s is inside sources[%d].path %s, so each backup would change what it backs up; move it elsewhere, or add it to sources[%d].exclude", dir, i, s.Path, i)
			}
		}
	}
}

// within reports whether path is strictly inside dir; both are clean.
func within(path, dir string) bool {
	return dir == "/" && path != "/" || strings.HasPrefix(path, dir+"/")
}

// derivedName names a database that the file does not name: by its type,
// and by its host when it is on another machine.
func derivedName(db *Database) string {
	switch db.Host {
	case "", "localhost", "127.0.0.1", "::1":
		return string(db.Type)
	}
	if db.Type == SQLite || strings.HasPrefix(db.Host, "/") {
		return string(db.Type)
	}
	host := strings.Map(func(r rune) rune {
		if nameChar(r) {
			return r
		}
		return '-'
	}, db.Host)
	return string(db.Type) + "-" + host
}

// validName: names appear on the command line (escrow db dump NAME) and in
// snapshot paths, so they are kept to characters that need no quoting.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' || s[0] == '-' || s[0] == '_' {
		return false
	}
	for _, r := range s {
		if !nameChar(r) {
			return false
		}
	}
	return true
}

func nameChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

package setup

import (
	"fmt"
	"slices"
	"strings"

	"github.com/escrow-backup/escrow/database"
)

// DefaultExcludes are proposed for every site. Each is data the
// application rebuilds on its own, changes all the time, or both, so
// backing it up costs uploads and watcher events and restores nothing of
// value (docs/setup.md says the same to the owner):
//
//   - page and object caches (WordPress plugins, Laravel, Symfony);
//   - sessions, which expire within hours and are worthless after a restore;
//   - logs, which grow without end and are not the site;
//   - node_modules, rebuilt by npm ci from the lock file that is kept, and
//     often tens of thousands of files.
//
// Deliberately kept: .git (the history may be the only copy of work never
// pushed, and it is small next to uploads), vendor/ (composer install needs
// the network and the same package versions, which may be gone), uploads.
var DefaultExcludes = []string{
	"*.log",
	"node_modules",
	"wp-content/cache",
	"wp-content/upgrade",
	"storage/framework/cache",
	"storage/framework/sessions",
	"storage/framework/views",
	"storage/logs",
	"var/cache",
	"var/log",
	"var/sessions",
}

// SiteSource is the source proposed for a site.
func SiteSource(s Site) Source {
	return Source{Path: s.Path, Exclude: slices.Clone(DefaultExcludes)}
}

// SiteDatabase is the database entry proposed for one a site names; the
// password found goes to a file setup writes.
func SiteDatabase(f database.Found) Database {
	s := f.Spec
	db := Database{
		Type: string(s.Type), Host: s.Host, Port: s.Port, Socket: s.Socket, User: s.User,
		Password: s.Password, Databases: slices.Clone(s.Databases), All: s.All, Path: s.Path,
		From: f.File,
	}
	if db.Type == string(database.MySQL) && db.Host != "" && db.Socket != "" {
		db.Host = "" // the socket is what the client uses when both are given
	}
	if len(db.Databases) == 1 {
		db.Name = nameFrom(db.Databases[0])
	}
	return db
}

// nameFrom makes a database name usable as a configuration name.
func nameFrom(s string) string {
	n := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, s)
	n = strings.TrimLeft(n, "._-")
	if len(n) > 64 {
		n = n[:64]
	}
	return n
}

// Merge adds the sites' sources and databases to a that a does not have yet:
// a site inside or equal to a source is covered, a database with the same
// name is the same entry. Names that clash otherwise get a number.
func Merge(a *Answers, sites []Site) {
	for _, s := range sites {
		covered := false
		for _, src := range a.Sources {
			if s.Path == src.Path || strings.HasPrefix(s.Path, strings.TrimSuffix(src.Path, "/")+"/") {
				covered = true
			}
		}
		if !covered {
			a.Sources = append(a.Sources, SiteSource(s))
		}
		for _, f := range s.Databases {
			AddDatabase(a, SiteDatabase(f))
		}
	}
}

// AddDatabase appends db unless an entry for the same databases exists,
// giving it a unique name.
func AddDatabase(a *Answers, db Database) {
	for _, o := range a.Databases {
		if o.Type == db.Type && o.Host == db.Host && o.Port == db.Port && o.Socket == db.Socket &&
			slices.Equal(o.Databases, db.Databases) && o.Path == db.Path {
			return
		}
	}
	base := db.Name
	if base == "" {
		base = db.Type
	}
	name := base
	for i := 2; slices.ContainsFunc(a.Databases, func(o Database) bool { return o.Name == name || o.Name == "" && o.Type == name }); i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	db.Name = name
	a.Databases = append(a.Databases, db)
}

// Describe is a database entry in a line, without its password.
func (db Database) Describe() string {
	var b strings.Builder
	b.WriteString(db.Type)
	switch {
	case db.Path != "":
		b.WriteString(" " + db.Path)
	default:
		if len(db.Databases) > 0 {
			b.WriteString(" " + strings.Join(db.Databases, ","))
		}
		if db.All {
			b.WriteString(" (all databases)")
		}
		if db.User != "" {
			b.WriteString(" as " + db.User)
		}
		switch {
		case db.Socket != "":
			b.WriteString(" via " + db.Socket)
		case db.Host != "" && db.Port != 0:
			fmt.Fprintf(&b, " on %s:%d", db.Host, db.Port)
		case db.Host != "":
			b.WriteString(" on " + db.Host)
		}
	}
	if db.From != "" {
		b.WriteString(" (from " + db.From + ")")
	}
	return b.String()
}

package setup

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/escrow-backup/escrow/database"
)

// Search says where web roots are looked for. Tests point it at a tree of
// their own; DefaultSearch is the usual layout of Debian, Ubuntu and
// RHEL-like servers.
type Search struct {
	// WWW are folders whose subfolders are sites (/var/www/*).
	WWW []string
	// Nginx are folders of nginx site configurations (root directives).
	Nginx []string
	// Apache are folders of Apache site configurations (DocumentRoot).
	Apache []string
}

// DefaultSearch is where sites live on most servers.
func DefaultSearch() Search {
	return Search{
		WWW:    []string{"/var/www"},
		Nginx:  []string{"/etc/nginx/sites-enabled", "/etc/nginx/conf.d"},
		Apache: []string{"/etc/apache2/sites-enabled", "/etc/httpd/conf.d"},
	}
}

// Site is a directory that looks like a website, with the databases its
// configuration names.
type Site struct {
	Path string
	// Why says where it was found ("/var/www", an nginx file).
	Why       string
	Databases []database.Found
}

// publicDirs are the names of document roots that sit inside an
// application whose code, .env and storage are one level up.
var publicDirs = []string{"public", "web", "htdocs", "public_html", "html", "www"}

// FindSites lists the web roots below s, outermost first: a root inside
// another is the same site. A document root named like public/ whose parent
// holds the application (.env, composer.json, artisan, wp-config.php) is
// replaced by the parent, so the code and its configuration are protected
// along with what the web server serves. Folders that cannot be read are
// skipped: setup proposes, and the owner decides.
func FindSites(s Search) []Site {
	var found []Site
	add := func(p, why string) {
		p = filepath.Clean(p)
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() {
			return
		}
		if slices.Contains(publicDirs, filepath.Base(p)) && appDir(filepath.Dir(p)) {
			p = filepath.Dir(p)
		}
		found = append(found, Site{Path: p, Why: why})
	}
	for _, www := range s.WWW {
		entries, err := os.ReadDir(www)
		if err != nil {
			continue
		}
		for _, e := range entries {
			p := filepath.Join(www, e.Name())
			if fi, err := os.Stat(p); err == nil && fi.IsDir() && !defaultPage(p) {
				add(p, www)
			}
		}
	}
	for _, dir := range s.Nginx {
		for _, f := range confFiles(dir) {
			for _, root := range directives(f, "root") {
				add(root, f)
			}
		}
	}
	for _, dir := range s.Apache {
		for _, f := range confFiles(dir) {
			for _, root := range directives(f, "DocumentRoot") {
				add(root, f)
			}
		}
	}
	// Outermost first, each site once.
	slices.SortStableFunc(found, func(a, b Site) int { return strings.Compare(a.Path, b.Path) })
	var sites []Site
	for _, f := range found {
		if n := len(sites); n > 0 && (sites[n-1].Path == f.Path || strings.HasPrefix(f.Path, sites[n-1].Path+"/")) {
			continue
		}
		sites = append(sites, f)
	}
	for i := range sites {
		// Discover skips what it cannot read; its error is only for the
		// root itself, which was just read.
		sites[i].Databases, _ = database.Discover(sites[i].Path)
	}
	return sites
}

// appDir reports whether dir holds an application's code and configuration.
func appDir(dir string) bool {
	for _, n := range []string{".env", "composer.json", "artisan", "wp-config.php", "package.json"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// defaultPage reports the distribution's placeholder site (/var/www/html
// with only index.html or index.nginx-debian.html), which is not worth
// proposing.
func defaultPage(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "index.") || !strings.HasSuffix(e.Name(), ".html") {
			return false
		}
	}
	return true
}

// confFiles lists the regular files of a configuration folder.
func confFiles(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			out = append(out, p)
		}
	}
	return out
}

// directives returns the absolute paths given to a directive in a web
// server configuration: "root /var/www/x;" (nginx) or `DocumentRoot
// "/var/www/x"` (Apache). Comments are skipped, and so are values with
// variables ($host), which name no single folder.
func directives(file, name string) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.EqualFold(fields[0], name) {
			continue
		}
		v := strings.Trim(strings.TrimSuffix(fields[1], ";"), `"'`)
		if filepath.IsAbs(v) && !strings.ContainsAny(v, "$%{") {
			out = append(out, v)
		}
	}
	return out
}

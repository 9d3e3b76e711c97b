package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/database"
)

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParsePreseedErrorsHaveLines(t *testing.T) {
	cases := []struct {
		name, text string
		want       []string
	}{
		{"unknown field", "repository: /srv/r\nsources:\n  - path: /var/www/a\n    excludes: [x]\n", []string{"p.yaml:4: field excludes not found"}},
		{"wrong kind", "repository: /srv/r\nservice: maybe\n", []string{"p.yaml:2: cannot unmarshal"}},
		{"syntax", "repository: /srv/r\n  bad: [\n", []string{"p.yaml:"}},
		{"two secrets", "repository: s3:https://h/b\ns3:\n  secret_access_key: x\n  secret_access_key_file: /f\n", []string{"p.yaml:4: s3.secret_access_key_file: give secret_access_key or"}},
		{"empty", "", []string{"p.yaml: the file is empty"}},
		{"two at once", "repository: /srv/r\nfoo: 1\nbar: 2\n", []string{"p.yaml:2: field foo", "p.yaml:3: field bar"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePreseed("p.yaml", []byte(tc.text))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "setup.Answers") || strings.Contains(err.Error(), "!!") {
				t.Errorf("error %q shows Go or YAML internals", err)
			}
		})
	}
}

func TestParsePreseedLines(t *testing.T) {
	p, err := ParsePreseed("p.yaml", []byte("repository: /srv/r\nsources:\n  - path: /a\n  - path: /b\n    exclude: [x]\nkit:\n  command: [sh, -c, 'cat > /x']\n"))
	if err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]int{"sources[1].path": 4, "sources[1].exclude[0]": 5, "sources[1].watch": 4, "kit.command": 7, "nothing": 0} {
		if got := p.Line(field); got != want {
			t.Errorf("Line(%q) = %d, want %d", field, got, want)
		}
	}
	if !slices.Equal(p.Kit.Command, []string{"sh", "-c", "cat > /x"}) {
		t.Errorf("kit.command = %q", p.Kit.Command)
	}
}

func TestFindSites(t *testing.T) {
	root := t.TempDir()
	www := filepath.Join(root, "www")
	write(t, filepath.Join(www, "shop", "wp-config.php"), `<?php define('DB_NAME', 'shop'); define('DB_USER', 'wp'); define('DB_PASSWORD', 's3cret'); define('DB_HOST', '127.0.0.1:3307');`)
	write(t, filepath.Join(www, "shop", "index.php"), "<?php")
	write(t, filepath.Join(www, "html", "index.nginx-debian.html"), "welcome")
	app := filepath.Join(root, "srv", "app")
	write(t, filepath.Join(app, ".env"), "DB_CONNECTION=sqlite\nDB_DATABASE="+filepath.Join(app, "db.sqlite")+"\n")
	write(t, filepath.Join(app, "public", "index.php"), "<?php")
	nginx := filepath.Join(root, "nginx")
	write(t, filepath.Join(nginx, "app.conf"), "server {\n  # root /nowhere;\n  root "+filepath.Join(app, "public")+";\n  root /var/www/$host;\n}\n")
	apache := filepath.Join(root, "apache")
	write(t, filepath.Join(apache, "shop.conf"), "<VirtualHost *:80>\n  DocumentRoot \""+filepath.Join(www, "shop", "wp")+"\"\n  DocumentRoot "+filepath.Join(www, "shop")+"\n</VirtualHost>\n")

	sites := FindSites(Search{WWW: []string{www}, Nginx: []string{nginx}, Apache: []string{apache, filepath.Join(root, "missing")}})
	var paths []string
	for _, s := range sites {
		paths = append(paths, s.Path)
	}
	// The placeholder html/ is left out, public/ becomes its application,
	// and the shop is listed once although two places name it.
	want := []string{filepath.Join(www, "shop"), app}
	slices.Sort(want)
	if !slices.Equal(paths, want) {
		t.Fatalf("sites = %q, want %q", paths, want)
	}
	for _, s := range sites {
		if len(s.Databases) != 1 {
			t.Fatalf("%s: databases %+v, want one", s.Path, s.Databases)
		}
		db := SiteDatabase(s.Databases[0])
		switch s.Path {
		case app:
			if db.Type != "sqlite" || db.Path != filepath.Join(app, "db.sqlite") {
				t.Errorf("app database %+v", db)
			}
		default:
			if db.Type != "mysql" || db.Name != "shop" || db.Port != 3307 || db.Password != "s3cret" || db.User != "wp" {
				t.Errorf("shop database %+v", db)
			}
		}
	}
}

func TestMergeAddsSitesOnce(t *testing.T) {
	a := &Answers{Sources: []Source{{Path: "/var/www"}}, Databases: []Database{{Type: "mysql", Name: "shop", Databases: []string{"shop"}}}}
	Merge(a, []Site{
		{Path: "/var/www/shop", Databases: []database.Found{{Spec: database.Spec{Type: database.MySQL, Databases: []string{"shop"}}}}},
		{Path: "/srv/app", Databases: []database.Found{{Spec: database.Spec{Type: database.MySQL, Host: "db", Databases: []string{"shop"}}}}},
	})
	if len(a.Sources) != 2 || a.Sources[1].Path != "/srv/app" || !slices.Equal(a.Sources[1].Exclude, DefaultExcludes) {
		t.Errorf("sources %+v", a.Sources)
	}
	// The same database is not added twice; another server's database of
	// the same name gets a name of its own.
	if len(a.Databases) != 2 || a.Databases[1].Name != "shop-2" {
		t.Errorf("databases %+v", a.Databases)
	}
}

func TestConfigTextKeepsWhatSetupDoesNotOwn(t *testing.T) {
	dir := t.TempDir()
	p := Paths{ConfigFile: filepath.Join(dir, "escrow.yaml")}
	a := &Answers{
		Repository: "s3:https://s3.example.com/bucket/site", S3: S3{AccessKeyID: "AKID", SecretAccessKey: "sekrit"},
		Sources:   []Source{{Path: "/var/www/a", Exclude: []string{"*.log"}}},
		Databases: []Database{{Type: "mysql", Name: "shop", User: "wp", Password: "dbpw", Databases: []string{"shop"}}},
	}
	first, err := ConfigText(nil, a, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"sekrit", "dbpw"} {
		if bytes.Contains(first, []byte(secret)) {
			t.Fatalf("the configuration holds a secret:\n%s", first)
		}
	}
	c, err := config.Parse(p.ConfigFile, first)
	if err != nil {
		t.Fatalf("%v\n%s", err, first)
	}
	if c.S3.SecretAccessKeyFile != p.S3Secret() || c.Databases[0].PasswordFile != p.DBPassword("shop") || c.PasswordFile != p.Password() {
		t.Errorf("secret files: %+v", c)
	}
	// The owner tunes the file; a second run changes the sources and drops
	// the databases, and keeps the owner's settings and comments.
	edited := append(first, []byte("# keep me\nlimits:\n  parallelism: 4\n")...)
	a.Sources = append(a.Sources, Source{Path: "/var/www/b"})
	a.Databases = nil
	second, err := ConfigText(edited, a, p)
	if err != nil {
		t.Fatal(err)
	}
	c, err = config.Parse(p.ConfigFile, second)
	if err != nil {
		t.Fatalf("%v\n%s", err, second)
	}
	if len(c.Sources) != 2 || len(c.Databases) != 0 || c.Limits.Parallelism != 4 || !bytes.Contains(second, []byte("# keep me")) {
		t.Errorf("second run:\n%s", second)
	}
	if _, err := ConfigText([]byte("- a list\n"), a, p); err == nil || !strings.Contains(err.Error(), "not a YAML mapping") {
		t.Errorf("a configuration that is not a mapping: %v", err)
	}
}

func TestEnsurePassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "password")
	pw, created, err := EnsurePassword(file, "")
	if err != nil || !created || len(pw) < 40 {
		t.Fatalf("EnsurePassword = %q, %v, %v", pw, created, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v", fi.Mode(), err)
	}
	again, created, err := EnsurePassword(file, "")
	if err != nil || created || again != pw {
		t.Fatalf("second EnsurePassword = %q, %v, %v; want the first password kept", again, created, err)
	}
	if _, _, err := EnsurePassword(file, "another"); !errors.Is(err, ErrPasswordDiffers) || strings.Contains(err.Error(), pw) {
		t.Errorf("a different password: %v", err)
	}
	given := filepath.Join(dir, "given")
	if got, _, err := EnsurePassword(given, "brought by the preseed"); err != nil || got != "brought by the preseed" {
		t.Errorf("given password: %q, %v", got, err)
	}
	empty := filepath.Join(dir, "empty")
	write(t, empty, "\n")
	if _, _, err := EnsurePassword(empty, ""); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty password file: %v", err)
	}
}

func TestDeliverKit(t *testing.T) {
	dir := t.TempDir()
	text := []byte("escrow recovery kit\npassword: hunter2\n")
	out := filepath.Join(dir, "received")
	file := filepath.Join(dir, "kit.txt")
	var stderr bytes.Buffer
	err := DeliverKit(context.Background(), text, KitAnswers{File: file, Command: []string{"sh", "-c", `cat > "$0"; echo stored >&2`, out}}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{file, out} {
		got, err := os.ReadFile(f)
		if err != nil || !bytes.Equal(got, text) {
			t.Errorf("%s = %q, %v", f, got, err)
		}
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("kit file mode %v", fi.Mode())
	}
	if stderr.String() != "stored\n" {
		t.Errorf("the command's messages: %q", stderr.String())
	}
	err = DeliverKit(context.Background(), text, KitAnswers{Command: []string{"sh", "-c", "cat; exit 7"}}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "kit command sh failed") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("failing command: %v", err)
	}
	if err := DeliverKit(context.Background(), text, KitAnswers{File: filepath.Join(dir, "no", "such", "dir", "kit")}, &stderr); err == nil {
		t.Error("a kit file in a missing folder was accepted")
	}
}

// scripted is a Terminal with answers given in advance.
type scripted struct {
	answers []string
	out     bytes.Buffer
}

func (s *scripted) Ask(q string) (string, error) {
	s.out.WriteString(q)
	if len(s.answers) == 0 {
		return "", ErrNoInput
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return a, nil
}
func (s *scripted) AskSecret(q string) (string, error) { return s.Ask(q) }
func (s *scripted) Say(format string, args ...any) {
	fmt.Fprintf(&s.out, format, args...)
}

func TestInterviewAsksAgainWhileTheStoreFails(t *testing.T) {
	term := &scripted{answers: []string{
		"s3:https://wrong.example/b", "AKID", "secret", "", "n", // refused
		"s3:https://right.example/b", "", "", "eu-west-1", "y", // the key ID and secret stay
		"7d", "", // retention, default mode
		"y", "", // the site, default excludes
		"/srv/extra", // another directory
		"y",          // its database
		"",           // kit file default
		"n",          // no secret in the kit
	}}
	a := &Answers{Kit: KitAnswers{File: "/root/kit.txt"}}
	var checked []string
	check := func(_ context.Context, a *Answers) error {
		checked = append(checked, a.Repository+" "+a.S3.AccessKeyID+" "+a.S3.SecretAccessKey)
		if strings.Contains(a.Repository, "wrong") {
			return errors.New("access denied")
		}
		return nil
	}
	sites := []Site{{Path: "/var/www/shop", Why: "/var/www", Databases: []database.Found{{Spec: database.Spec{Type: database.MySQL, Databases: []string{"shop"}}}}}}
	if err := Interview(context.Background(), term, a, sites, check); err != nil {
		t.Fatalf("%v\n%s", err, term.out.String())
	}
	if !slices.Equal(checked, []string{"s3:https://wrong.example/b AKID secret", "s3:https://right.example/b AKID secret"}) {
		t.Errorf("checked %q", checked)
	}
	if a.S3.Region != "eu-west-1" || !a.ObjectLock || a.ObjectLockRetention != "7d" || a.ObjectLockMode != DefaultLockMode || a.Kit.File != "/root/kit.txt" || On(a.Kit.IncludeCredentials, true) {
		t.Errorf("answers %+v", a)
	}
	if len(a.Sources) != 2 || a.Sources[1].Path != "/srv/extra" || len(a.Databases) != 1 {
		t.Errorf("sources %+v databases %+v", a.Sources, a.Databases)
	}
	if !strings.Contains(term.out.String(), "access denied") {
		t.Errorf("the store's error was not shown:\n%s", term.out.String())
	}

	// Input that ends is an error, not an empty setup.
	term = &scripted{answers: []string{"/srv/repo"}}
	if err := Interview(context.Background(), term, &Answers{}, nil, func(context.Context, *Answers) error { return nil }); !errors.Is(err, ErrNoInput) {
		t.Errorf("ended input: %v", err)
	}
}

// TestResellersExample parses the preseed example in docs/resellers.md:
// the documentation shows a file that works.
func TestResellersExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/resellers.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```yaml\n")
	example, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/resellers.md has no yaml example")
	}
	p, err := ParsePreseed("resellers.md", []byte(example))
	if err != nil {
		t.Fatal(err)
	}
	a := p.Answers
	if a.Repository == "" || a.S3.SecretAccessKey == "" || !a.ObjectLock || On(a.Discover, true) || len(a.Sources) != 1 ||
		len(a.Databases) != 1 || a.Databases[0].Password == "" || a.Kit.File == "" || len(a.Kit.Command) != 2 || !On(a.Kit.Confirm, false) {
		t.Errorf("the example reads as %+v", a)
	}
	text, err := ConfigText(nil, &a, Paths{ConfigFile: "/etc/escrow/escrow.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := config.Parse("/etc/escrow/escrow.yaml", text); err != nil {
		t.Errorf("the example's configuration: %v\n%s", err, text)
	}
}

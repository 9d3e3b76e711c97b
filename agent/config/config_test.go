package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/yamlfuzz"
)

// secretText is in every secret file of the fixture; no message may show it.
const secretText = "s3cr3t-never-printed"

// fixture makes a directory with what a valid configuration names and
// returns it.
func fixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"site/wp-content", "other", "state", "locked"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := []struct {
		name, data string
		mode       os.FileMode
	}{
		{"password", secretText + "\nsecond line\n", 0o600},
		{"s3.secret", secretText + "\n", 0o600},
		{"world", secretText + "\n", 0o644},
		{"empty", "\n", 0o600},
		{"file.txt", "not a directory\n", 0o644},
		{"excludes", "# comment\n*.tmp\n", 0o644},
		{"badexcludes", "[abc\n", 0o644},
		{"data.sqlite", "SQLite format 3\x00", 0o640},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, []byte(f.data), f.mode); err != nil {
			t.Fatal(err)
		}
		// WriteFile's mode is filtered by the umask.
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "locked"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(dir, "locked"), 0o755) })
	return dir
}

// load writes text (with {dir} replaced) to dir/escrow.yaml and loads it.
// Unless the text sets state_dir or is not a plain mapping, state_dir is
// set at its end, where it moves no line: the default, /var/lib/escrow, can
// only be created by root.
func load(t *testing.T, dir, text string) (*Config, error) {
	t.Helper()
	plain := strings.HasPrefix(text, "repository:") || strings.HasPrefix(text, "password_file:")
	if plain && !strings.Contains(text, "state_dir") {
		text += "state_dir: {dir}/state\n"
	}
	name := filepath.Join(dir, "escrow.yaml")
	if err := os.WriteFile(name, []byte(strings.ReplaceAll(text, "{dir}", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(name)
}

// head is a valid start of a file: lines 1 and 2.
const head = "repository: /srv/repo\npassword_file: {dir}/password\n"

// site is a valid sources list: lines 3 and 4 after head.
const site = "sources:\n  - path: {dir}/site\n"

func TestBadFiles(t *testing.T) {
	dir := fixture(t)
	cases := []struct {
		name   string
		text   string
		want   string // with {dir} replaced
		asRoot bool   // false: skipped as root, who can read anything
	}{
		{"unknown top-level key", "repository: /srv/repo\npasword_file: {dir}/password\n" + site,
			`escrow.yaml:2: unknown field "pasword_file" (did you mean "password_file"?)`, true},
		{"unknown nested key", head + site + "schedule:\n  quiet_perod: 5s\n",
			`escrow.yaml:6: schedule: unknown field "quiet_perod" (did you mean "quiet_period"?)`, true},
		{"swapped letters", head + site + "hots: web1\n",
			`escrow.yaml:5: unknown field "hots" (did you mean "host"?)`, true},
		{"key in the wrong section", head + site + "quiet_period: 5s\n",
			`escrow.yaml:5: unknown field "quiet_period" (it belongs under schedule:)`, true},
		{"unknown key in a list entry", head + site + "    excludes: [x]\n",
			`escrow.yaml:5: sources[0]: unknown field "excludes" (did you mean "exclude"?)`, true},
		{"key given twice", head + "repository: /srv/other\n" + site,
			`escrow.yaml:3: repository: given twice (first on line 1); keep one`, true},
		{"string for a list", head + "sources: {dir}/site\n",
			`escrow.yaml:3: sources: expected a list (lines starting with "- "), got "`, true},
		{"bare path for a source", head + "sources:\n  - {dir}/site\n",
			`escrow.yaml:4: sources[0]: expected key: value lines, got "` + dir + `/site"; write it as - path: ` + dir + "/site", true},
		{"string for exclude", head + site + "    exclude: \"*.log\"\n",
			`escrow.yaml:5: sources[0].exclude: expected a list (lines starting with "- "), got "*.log"`, true},
		{"list for a string", head + site + "host: [a, b]\n",
			`escrow.yaml:5: host: expected a single value, got a list`, true},
		{"list for a mapping", head + site + "schedule:\n  - quiet_period: 5s\n",
			`escrow.yaml:6: schedule: expected key: value lines, got a list`, true},
		{"not a boolean", head + site + "    watch: yes\n",
			`escrow.yaml:5: sources[0].watch: expected true or false, got "yes"`, true},
		{"not a number", head + site + "limits:\n  parallelism: two\n",
			`escrow.yaml:6: limits.parallelism: expected a whole number, got "two"`, true},
		{"webhook without url_file", head + site + "notify:\n  webhooks:\n    - style: ping\n",
			`escrow.yaml:7: notify.webhooks[0].url_file: missing; give the file holding the webhook's URL`, true},
		{"webhook URL inline", head + site + "notify:\n  webhooks:\n    - url_file: https://chat.example.com/hooks/T0KEN\n",
			`escrow.yaml:7: notify.webhooks[0].url_file: not an absolute path; give the path of a file holding the secret`, true},
		{"unknown webhook style", head + site + "notify:\n  webhooks:\n    - url_file: {dir}/password\n      style: slack\n",
			`escrow.yaml:8: notify.webhooks[0].style: "slack" is not one of json, ping`, true},
		{"email without server", head + site + "notify:\n  email:\n    to: [a@example.com]\n",
			`escrow.yaml: notify.email.server: missing; give the SMTP server as host:port`, true},
		{"email server without port", head + site + "notify:\n  email:\n    server: smtp.example.com\n    from: a@example.com\n    to: [b@example.com]\n",
			`escrow.yaml:7: notify.email.server: "smtp.example.com" is not host:port`, true},
		{"email without recipients", head + site + "notify:\n  email:\n    server: smtp.example.com:587\n    from: a@example.com\n",
			`escrow.yaml: notify.email.to: missing; give at least one recipient`, true},
		{"email login without password", head + site + "notify:\n  email:\n    server: smtp.example.com:587\n    username: a\n    from: a@example.com\n    to: [b@example.com]\n",
			`escrow.yaml: notify.email.password_file: missing; username is set`, true},
		{"email bad address", head + site + "notify:\n  email:\n    server: smtp.example.com:587\n    from: a@example.com\n    to: [\"b@example.com, c@example.com\"]\n",
			`escrow.yaml:9: notify.email.to[0]: "b@example.com, c@example.com" is not one mail address`, true},
		{"email password inline", head + site + "notify:\n  email:\n    password: hunter2\n",
			`escrow.yaml:7: notify.email.password: secrets do not belong in the configuration file`, true},
		{"metrics_listen without port", head + site + "metrics_listen: localhost\n",
			`escrow.yaml:5: metrics_listen: "localhost" is not [HOST]:PORT`, true},
		{"number without unit as duration", head + site + "schedule:\n  quiet_period: 10\n",
			`escrow.yaml:6: schedule.quiet_period: "10" is not a duration (write it like 10s or 2m`, true},
		{"bad duration", head + site + "databases:\n  - type: sqlite\n    path: {dir}/data.sqlite\n    every: often\n",
			`escrow.yaml:8: databases[0].every: "often" is not a duration`, true},
		{"negative duration", head + site + "schedule:\n  rescan_every: -1h\n",
			`escrow.yaml:6: schedule.rescan_every: -1h: must be more than zero`, true},
		{"duration too short", head + site + "schedule:\n  rescan_every: 30s\n",
			`escrow.yaml:6: schedule.rescan_every: 30s is too short; the least is 1m`, true},
		{"quiet period too short", head + site + "schedule:\n  quiet_period: 10ms\n",
			`schedule.quiet_period: 10ms is too short; the least is 100ms`, true},
		{"max_delay below quiet_period", head + site + "schedule:\n  quiet_period: 10s\n  max_delay: 5s\n",
			`escrow.yaml:7: schedule.max_delay: max_delay (5s) must be at least quiet_period (10s)`, true},
		{"quiet_period above the default max_delay", head + site + "schedule:\n  quiet_period: 2m\n",
			`escrow.yaml:6: schedule.quiet_period: max_delay (1m) must be at least quiet_period (2m)`, true},
		{"missing repository", "password_file: {dir}/password\n" + site,
			`escrow.yaml: repository: missing; give where backups go`, true},
		{"unknown repository scheme", "repository: sftp:user@host:/x\npassword_file: {dir}/password\n" + site,
			`escrow.yaml:1: repository: unknown kind of repository "sftp:"`, true},
		{"bad S3 address", "repository: s3:https://s3.example.com\npassword_file: {dir}/password\n" + site,
			`escrow.yaml:1: repository: invalid S3 address "s3:https://s3.example.com": the bucket is missing`, true},
		{"relative repository", "repository: backups\npassword_file: {dir}/password\n" + site,
			`escrow.yaml:1: repository: "backups" is not an absolute path`, true},
		{"missing password_file", "repository: /srv/repo\n" + site,
			`escrow.yaml: password_file: missing`, true},
		{"relative source path", head + "sources:\n  - path: var/www/site\n",
			`escrow.yaml:4: sources[0].path: "var/www/site" is not an absolute path; start it with /`, true},
		{"source without path", head + "sources:\n  - watch: false\n",
			`escrow.yaml:4: sources[0].path: missing`, true},
		{"nonexistent source", head + "sources:\n  - path: {dir}/sit\n",
			`escrow.yaml:4: sources[0].path: ` + dir + `/sit does not exist`, true},
		{"file as source", head + "sources:\n  - path: {dir}/file.txt\n",
			`escrow.yaml:4: sources[0].path: ` + dir + `/file.txt is a file, not a directory`, true},
		{"unreadable source", head + "sources:\n  - path: {dir}/locked\n",
			`escrow.yaml:4: sources[0].path: ` + dir + `/locked cannot be read: permission denied`, false},
		{"world-readable password file", "repository: /srv/repo\npassword_file: {dir}/world\n" + site,
			`escrow.yaml:2: password_file: ` + dir + `/world can be read by every user of this machine (mode 0644); run: chmod 600 ` + dir + `/world`, true},
		{"empty password file", "repository: /srv/repo\npassword_file: {dir}/empty\n" + site,
			`escrow.yaml:2: password_file: password file ` + dir + `/empty is empty: put the repository password in it`, true},
		{"missing secret file", head + site + "s3:\n  secret_access_key_file: {dir}/nope\n",
			`escrow.yaml:6: s3.secret_access_key_file: ` + dir + `/nope does not exist`, true},
		{"secret written in a _file field", "repository: /srv/repo\npassword_file: " + secretText + "\n" + site,
			`escrow.yaml:2: password_file: not an absolute path; give the path of a file holding the secret`, true},
		{"inline password", head + site + "password: " + secretText + "\n",
			`escrow.yaml:5: password: secrets do not belong in the configuration file: put it in a file readable only by root (chmod 600) and give that file's path as password_file`, true},
		{"inline S3 secret", head + site + "s3:\n  secret_access_key: " + secretText + "\n",
			`escrow.yaml:6: s3.secret_access_key: secrets do not belong in the configuration file`, true},
		{"inline session token", head + site + "s3:\n  session_token: " + secretText + "\n",
			`escrow.yaml:6: s3.session_token: secrets do not belong in the configuration file`, true},
		{"inline database password", head + "databases:\n  - type: mysql\n    all: true\n    password: " + secretText + "\n",
			`escrow.yaml:6: databases[0].password: secrets do not belong in the configuration file`, true},
		{"source inside another", head + site + "  - path: {dir}/site/wp-content\n",
			`escrow.yaml:5: sources[1].path: ` + dir + `/site/wp-content is inside sources[0].path ` + dir + `/site`, true},
		{"source around another", head + "sources:\n  - path: {dir}/site/wp-content\n  - path: {dir}/site/\n",
			`escrow.yaml:5: sources[1].path: ` + dir + `/site contains sources[0].path ` + dir + `/site/wp-content`, true},
		{"source twice", head + site + "  - path: {dir}/site\n",
			`escrow.yaml:5: sources[1].path: ` + dir + `/site is already sources[0]`, true},
		{"bad exclude pattern", head + site + "    exclude: [\"[abc\"]\n",
			`escrow.yaml:5: sources[0].exclude[0]: "[abc" is not a valid pattern`, true},
		{"missing exclude file", head + site + "    exclude_file: [{dir}/nope]\n",
			`escrow.yaml:5: sources[0].exclude_file[0]: ` + dir + `/nope does not exist`, true},
		{"bad pattern in exclude file", head + site + "    exclude_file: [{dir}/badexcludes]\n",
			`escrow.yaml:5: sources[0].exclude_file[0]: ` + dir + `/badexcludes: "[abc" is not a valid pattern`, true},
		{"tag with a comma", head + site + "    tags: [\"a,b\"]\n",
			`escrow.yaml:5: sources[0].tags[0]: "a,b" contains a comma`, true},
		{"duplicate database names", head + "databases:\n  - type: mysql\n    name: shop\n    all: true\n  - type: postgres\n    name: shop\n    all: true\n",
			`escrow.yaml:7: databases[1].name: "shop" is also the name of databases[0]; names must be unique: set a different name: on one of them`, true},
		{"duplicate derived names", head + "databases:\n  - type: mysql\n    all: true\n  - type: mysql\n    databases: [a]\n",
			`escrow.yaml:6: databases[1].name: "mysql" is also the name of databases[0]; names must be unique: the name comes from the type and host`, true},
		{"unusable database name", head + "databases:\n  - type: mysql\n    name: my shop\n    all: true\n",
			`escrow.yaml:5: databases[0].name: "my shop" is not a usable name`, true},
		{"databases and all", head + "databases:\n  - type: mysql\n    databases: [shop]\n    all: true\n",
			`escrow.yaml:6: databases[0].all: give either databases: or all: true, not both`, true},
		{"neither databases nor all", head + "databases:\n  - type: postgres\n    host: db.example.com\n",
			`escrow.yaml:4: databases[0]: say which databases to dump: databases: [NAME, ...] or all: true`, true},
		{"database without type", head + "databases:\n  - name: shop\n    all: true\n",
			`escrow.yaml:4: databases[0].type: missing; one of mysql (also for MariaDB), postgres, sqlite`, true},
		{"mariadb type", head + "databases:\n  - type: mariadb\n    all: true\n",
			`escrow.yaml:4: databases[0].type: "mariadb" is not one of mysql, postgres, sqlite; use mysql for MariaDB`, true},
		{"sqlite without path", head + "databases:\n  - type: sqlite\n",
			`escrow.yaml:4: databases[0].path: missing; give the SQLite database file`, true},
		{"sqlite with a user", head + "databases:\n  - type: sqlite\n    path: {dir}/data.sqlite\n    user: root\n",
			`escrow.yaml:6: databases[0].user: not used for sqlite`, true},
		{"sqlite file missing", head + "databases:\n  - type: sqlite\n    path: {dir}/gone.sqlite\n",
			`escrow.yaml:5: databases[0].path: ` + dir + `/gone.sqlite does not exist`, true},
		{"path for mysql", head + "databases:\n  - type: mysql\n    all: true\n    path: {dir}/data.sqlite\n",
			`escrow.yaml:6: databases[0].path: only for sqlite`, true},
		{"mysql host and socket", head + "databases:\n  - type: mysql\n    all: true\n    host: db\n    socket: /run/mysqld/mysqld.sock\n",
			`escrow.yaml:7: databases[0].socket: give host or socket, not both`, true},
		{"postgres socket", head + "databases:\n  - type: postgres\n    all: true\n    socket: /run/postgresql/.s.PGSQL.5432\n",
			`escrow.yaml:6: databases[0].socket: only for mysql; for postgres give the socket's directory as host`, true},
		{"port out of range", head + "databases:\n  - type: postgres\n    all: true\n    port: 70000\n",
			`escrow.yaml:6: databases[0].port: 70000 is out of range; use a number from 0 to 65535`, true},
		{"bandwidth with unknown unit", head + site + "limits:\n  upload_bandwidth: 5 mbps\n",
			`escrow.yaml:6: limits.upload_bandwidth: "5 mbps" has an unknown unit "mbps" (write it like 5MiB/s, 500KB/s or 40Mbit/s; 0 for no limit)`, true},
		{"bandwidth without unit", head + site + "limits:\n  upload_bandwidth: 500\n",
			`escrow.yaml:6: limits.upload_bandwidth: "500" has no unit`, true},
		{"bad cpu priority", head + site + "limits:\n  cpu_priority: lowest\n",
			`escrow.yaml:6: limits.cpu_priority: "lowest" is not one of low, normal`, true},
		{"bad io priority", head + site + "limits:\n  io_priority: high\n",
			`escrow.yaml:6: limits.io_priority: "high" is not one of idle, low, normal`, true},
		{"bad log format", head + site + "log:\n  format: xml\n",
			`escrow.yaml:6: log.format: "xml" is not one of text, json`, true},
		{"bad log level", head + site + "log:\n  level: verbose\n",
			`escrow.yaml:6: log.level: "verbose" is not one of debug, info, warn, error`, true},
		{"parallelism zero", head + site + "limits:\n  parallelism: 0\n",
			`escrow.yaml:6: limits.parallelism: 0 is out of range; use a number from 1 to 64`, true},
		{"parallelism too high", head + site + "limits:\n  parallelism: 100\n",
			`escrow.yaml:6: limits.parallelism: 100 is out of range; use a number from 1 to 64`, true},
		{"nothing to back up", head + "sources: []\ndatabases: []\n",
			`escrow.yaml: nothing to back up: add a directory under sources: or a database under databases:`, true},
		{"relative state_dir", head + site + "state_dir: var/lib/escrow\n",
			`escrow.yaml:5: state_dir: "var/lib/escrow" is not an absolute path`, true},
		{"state_dir inside a source", head + site + "state_dir: {dir}/site/.escrow\n",
			`escrow.yaml:5: state_dir: ` + dir + `/site/.escrow is inside sources[0].path ` + dir + `/site, so each backup would change what it backs up`, true},
		{"repository inside a source", "repository: {dir}/site/repo\npassword_file: {dir}/password\n" + site,
			`escrow.yaml:1: repository: ` + dir + `/site/repo is inside sources[0].path`, true},
		{"state_dir cannot be created", head + site + "state_dir: {dir}/file.txt/state\n",
			`escrow.yaml:5: state_dir: ` + dir + `/file.txt/state does not exist and cannot be created: ` + dir + `/file.txt is not a directory`, true},
		{"state_dir is a file", head + site + "state_dir: {dir}/file.txt\n",
			`escrow.yaml:5: state_dir: ` + dir + `/file.txt is not a directory`, true},
		{"ca_file over http", "repository: s3:http://127.0.0.1:9000/bucket\npassword_file: {dir}/password\n" + site + "s3:\n  ca_file: {dir}/file.txt\n",
			`escrow.yaml:6: s3.ca_file: the repository address uses http://, which has no TLS to verify`, true},
		{"ca_file without certificates", "repository: s3:https://s3.example.com/bucket\npassword_file: {dir}/password\n" + site + "s3:\n  ca_file: {dir}/file.txt\n",
			`escrow.yaml:6: s3.ca_file: ` + dir + `/file.txt holds no PEM certificate`, true},
		{"YAML syntax error", head + site + "host: \"web1\nstate_dir: /x\n",
			`escrow.yaml:5: not valid YAML: found unexpected end of stream`, true},
		{"tab indentation", head + "sources:\n\t- path: {dir}/site\n",
			`escrow.yaml:4: not valid YAML: this line is indented with a tab; indent with spaces only`, true},
		{"tab inside a list", head + site + "    exclude:\n    \t- x\n",
			`escrow.yaml:6: not valid YAML: this line is indented with a tab; indent with spaces only`, true},
		{"two documents", head + site + "state_dir: {dir}/state\n---\nhost: x\n",
			`escrow.yaml:6: a second YAML document starts here ("---")`, true},
		{"a list at the top", "- repository: /srv/repo\n",
			`escrow.yaml:1: expected key: value lines at the top level, got a list`, true},
		{"empty file", "# nothing yet\n",
			`escrow.yaml: the file is empty; start from`, true},
		{"merge key", head + site + "schedule:\n  <<: {quiet_period: 5s}\n",
			`escrow.yaml:6: schedule: merge keys (<<) are not supported`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.asRoot && os.Geteuid() == 0 {
				t.Skip("root can read anything")
			}
			c, err := load(t, dir, tc.text)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if c != nil {
				t.Error("a Config was returned with an error")
			}
			want := strings.ReplaceAll(tc.want, "{dir}", dir)
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
			if strings.Contains(err.Error(), secretText) {
				t.Fatalf("a secret is in the error: %v", err)
			}
			// The test text holds one mistake; extra messages would be
			// noise piled on it.
			if n := len(yamlfuzz.Unjoin(err)); n != 1 {
				t.Errorf("%d problems reported, want 1:\n%v", n, err)
			}
		})
	}
}

// Every problem is reported, in line order, each as an *Error; file checks
// run even when other fields are wrong.
func TestEveryProblem(t *testing.T) {
	dir := fixture(t)
	_, err := load(t, dir, `repository: /srv/repo
password_file: {dir}/world
sources:
  - path: {dir}/sit
    watch: maybe
schedule:
  quiet_period: 10
limits:
  parallelism: 0
`)
	errs := yamlfuzz.Unjoin(err)
	wantLines := []int{2, 4, 5, 7, 9}
	if len(errs) != len(wantLines) {
		t.Fatalf("%d problems, want %d:\n%v", len(errs), len(wantLines), err)
	}
	for i, e := range errs {
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("%T is not an *Error", e)
		}
		if ce.Line != wantLines[i] || !strings.HasSuffix(ce.File, "escrow.yaml") || ce.Field == "" {
			t.Errorf("problem %d: %+v, want line %d", i, ce, wantLines[i])
		}
	}
}

// Parse does not touch the file system: a file that names missing paths
// parses, and Load then reports them.
func TestParseWithoutFiles(t *testing.T) {
	text := "repository: /srv/repo\npassword_file: /nonexistent/password\nsources:\n  - path: /nonexistent/site\n"
	c, err := Parse("escrow.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	err = c.CheckFiles()
	for _, want := range []string{
		"escrow.yaml:2: password_file: /nonexistent/password does not exist",
		"escrow.yaml:4: sources[0].path: /nonexistent/site does not exist",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckFiles: %v; want %q", err, want)
		}
	}
	// A Config made in code has no lines; messages still name the field.
	c = &Config{File: "made.yaml", PasswordFile: "/nonexistent/password"}
	if err := c.CheckFiles(); err == nil || err.Error() != "made.yaml: password_file: /nonexistent/password does not exist" {
		t.Errorf("CheckFiles of a Config made in code: %v", err)
	}
}

func TestLoadOK(t *testing.T) {
	dir := fixture(t)
	c, err := load(t, dir, head+site+"    exclude_file: [{dir}/excludes]\ndatabases:\n  - type: sqlite\n    path: {dir}/data.sqlite\nstate_dir: {dir}/state/new/deeper\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.File != filepath.Join(dir, "escrow.yaml") || c.Sources[0].Path != filepath.Join(dir, "site") || c.Databases[0].Name != "sqlite" {
		t.Fatalf("%+v", c)
	}
	if _, err := os.Stat(filepath.Join(dir, "state/new")); !os.IsNotExist(err) {
		t.Error("Load created state_dir")
	}
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/yamlfuzz"
)

// badValues holds, for every field of the schema, values of the right
// kind that are still wrong. Fields that take any text hold "" with the
// reason in anyText. TestBadInputEveryField fails when a field is added
// without an entry here.
var badValues = map[string][]string{
	"repository":                 {"ftp://host/x", `"s3:"`, `"s3:http://"`},
	"password_file":              {"password.txt", "{dir}/nonexistent", "{dir}/world", "{dir}/empty", "{dir}/site"},
	"s3.secret_access_key_file":  {"s3.secret", "{dir}/nonexistent", "{dir}/world"},
	"s3.session_token_file":      {"token", "{dir}/nonexistent"},
	"s3.ca_file":                 {"ca.pem", "{dir}/nonexistent"},
	"sources[].path":             {"site", "{dir}/nonexistent", "{dir}/file.txt"},
	"sources[].exclude":          {`["[abc"]`},
	"sources[].exclude_file":     {"[excludes]", "[{dir}/nonexistent]", "[{dir}/badexcludes]"},
	"sources[].watch":            {"yes", "1", "maybe"},
	"sources[].one_file_system":  {"no", "2"},
	"sources[].fresh_within":     {"10", "soon", "30s", "-5m", "0"},
	"databases[].type":           {"mariadb", "postgresql", "oracle"},
	"databases[].port":           {"65536", "-1", "http", "3306.5"},
	"databases[].socket":         {"mysqld.sock"},
	"databases[].password_file":  {"db.pass", "{dir}/nonexistent", "{dir}/world"},
	"databases[].all":            {"sure"},
	"databases[].path":           {"shop.sqlite", "{dir}/nonexistent"},
	"databases[].every":          {"daily", "0", "-1h"},
	"databases[].fresh_within":   {"1", "later"},
	"schedule.quiet_period":      {"5", "1ms", "quick"},
	"schedule.max_delay":         {"0", "never"},
	"schedule.rescan_every":      {"1s", "hourly"},
	"limits.upload_bandwidth":    {"5", "fast", "5 furlongs/s", "0.0001B/s", "99999999TB/s"},
	"limits.cpu_priority":        {"high", "19"},
	"limits.io_priority":         {"realtime"},
	"limits.parallelism":         {"0", "65", "two", "1.5"},
	"state_dir":                  {"state", "{dir}/file.txt"},
	"log.format":                 {"xml"},
	"log.level":                  {"verbose", "trace"},
	"heartbeat_every":            {"1s", "often"},
	"notify.repeat_after":        {"1s", "daily"},
	"notify.webhooks[].url_file": {"https://chat.example.com/hooks/T0KEN", "{dir}/nonexistent"},
	"notify.webhooks[].style":    {"slack"},
	"notify.email.server":        {"smtp.example.com", "smtp.example.com:port"},
	"notify.email.tls":           {"ssl", "yes"},
	"notify.email.password_file": {"mail.pass", "{dir}/nonexistent"},
	"notify.email.from":          {"not an address", "a@example.com, b@example.com"},
	"notify.email.to":            {`["not an address"]`, `["b@example.com, c@example.com"]`},
	"metrics_listen":             {"localhost", "127.0.0.1:99999", "::1"},
	"s3.access_key_id":           {""},
	"s3.region":                  {""},
	"host":                       {""},
	"sources[].tags":             {""},
	"databases[].name":           {""},
	"databases[].host":           {""},
	"databases[].user":           {""},
	"databases[].databases":      {""},
	"notify.email.username":      {""},
}

// anyText names the fields that take any text, and why no value is wrong.
var anyText = map[string]string{
	"s3.access_key_id":      "the store decides which key IDs exist",
	"s3.region":             "stores name regions freely",
	"host":                  "any name may be recorded in snapshots",
	"sources[].tags":        "tags are free text",
	"databases[].name":      "a label of the user's choice",
	"databases[].host":      "a host name, checked when the dump runs",
	"databases[].user":      "checked by the database server",
	"databases[].databases": "database names are checked by the server",
	"notify.email.username": "checked by the mail server",
}

// yamlFor returns a configuration with value at path (a fieldPaths name)
// and the line the value is on. The rest is a valid configuration, so
// that the value's problem is reported among at most a few others (a
// required field next to it, missing).
func yamlFor(path, value string) (string, int) {
	lines := []string{}
	for _, f := range []string{"repository: /srv/repo", "password_file: {dir}/password", "state_dir: {dir}/state"} {
		if !strings.HasPrefix(path, strings.SplitN(f, ":", 2)[0]) {
			lines = append(lines, f)
		}
	}
	if !strings.HasPrefix(path, "sources") {
		lines = append(lines, "sources:", "  - path: {dir}/site")
	}
	indent := ""
	parts := strings.Split(path, ".")
	for i, p := range parts {
		key, list := strings.CutSuffix(p, "[]")
		prefix := indent
		if i > 0 && strings.HasSuffix(parts[i-1], "[]") {
			prefix = indent[:len(indent)-2] + "- " // the entry's first (and only) field
		}
		if i == len(parts)-1 {
			lines = append(lines, prefix+key+": "+value)
			at := len(lines)
			// Siblings the field is only checked with, after it so that
			// its line stays put.
			parent := strings.Join(parts[:i], ".")
			for _, sib := range siblings[parent] {
				if !strings.HasPrefix(sib, key+":") {
					lines = append(lines, indent+sib)
				}
			}
			return strings.Join(lines, "\n") + "\n", at
		}
		lines = append(lines, prefix+key+":")
		indent += "  "
		if list {
			indent += "  "
		}
	}
	return strings.Join(lines, "\n") + "\n", len(lines)
}

// siblings are fields a value is checked together with: a database's path
// only once its type is known, an email field once email is set up.
var siblings = map[string][]string{
	"databases[]":  {"type: sqlite"},
	"notify.email": {"server: smtp.example.com:587", "from: escrow@example.com", "to: [owner@example.com]"},
}

// reportedAt reports whether err names field (or an element of it) on line.
func reportedAt(err error, field string, line int) bool {
	for _, e := range yamlfuzz.Unjoin(err) {
		var ce *Error
		if errors.As(e, &ce) && (ce.Field == field || strings.HasPrefix(ce.Field, field+"[")) && ce.Line == line {
			return true
		}
	}
	return false
}

// Every field of the schema, given a value of the wrong kind and each of
// its wrong values of the right kind, is refused with its path and line.
func TestBadInputEveryField(t *testing.T) {
	dir := fixture(t)
	paths := fieldPaths(reflect.TypeFor[Config](), "")
	for _, path := range paths {
		field := strings.ReplaceAll(path, "[]", "[0]")
		// A wrong kind: a list where one value belongs, a single value
		// where a list or key: value lines belong.
		kind := "[a, b]"
		if isList(path) || isMapping(path) {
			kind = "oops"
		}
		values := append([]string{kind}, badValues[path]...)
		if _, ok := badValues[path]; !ok && kind != "oops" {
			t.Errorf("%s: no entry in badValues", path)
		}
		for _, v := range values {
			if v == "" {
				if anyText[path] == "" {
					t.Errorf("%s: takes any text, but anyText does not say why", path)
				}
				continue
			}
			t.Run(field+"="+v, func(t *testing.T) {
				text, line := yamlFor(path, v)
				_, err := load(t, dir, text)
				if err == nil {
					t.Fatalf("accepted:\n%s", text)
				}
				if !reportedAt(err, field, line) {
					t.Fatalf("no problem reported for %s on line %d:\n%v\n--- file:\n%s", field, line, err, text)
				}
				if strings.Contains(err.Error(), secretText) {
					t.Fatalf("a secret file's content is in the message: %v", err)
				}
			})
		}
	}
	for path := range badValues {
		if !contains(paths, path) {
			t.Errorf("badValues names %s, which is not a field", path)
		}
	}
}

func isList(path string) bool    { return listFields[path] }
func isMapping(path string) bool { return mappingFields[path] }

var listFields = map[string]bool{
	"sources": true, "databases": true, "notify.webhooks": true,
	"sources[].exclude": true, "sources[].exclude_file": true, "sources[].tags": true,
	"databases[].databases": true, "notify.email.to": true,
}

var mappingFields = map[string]bool{
	"s3": true, "schedule": true, "limits": true, "log": true, "notify": true, "notify.email": true,
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// The agent reads the repository password as escrow's commands do, up to
// 16 MiB: a repository made with a 1 MiB password opens in the agent too.
// A secret file whose first line is longer than its bound is refused, not
// cut short (which would make another secret).
func TestBadInputLongSecrets(t *testing.T) {
	dir := fixture(t)
	long := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	for _, tc := range []struct {
		name, file, content string
		wantErr             bool
	}{
		{"1 MiB password", "password", long + "\n", false},
		{"1 MiB password without newline", "password", long, false},
		{"17 MiB password", "password", strings.Repeat(long, 17), true},
		{"1 MiB S3 secret", "s3.secret", long + "\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, content := range map[string]string{"password": secretText + "\n", "s3.secret": secretText + "\n", tc.file: tc.content} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := load(t, dir, head+site+"s3:\n  access_key_id: AKIA1\n  secret_access_key_file: {dir}/s3.secret\n")
			if tc.wantErr {
				// The password file's bound is repo.ReadPasswordFile's.
				if err == nil || !(strings.Contains(err.Error(), "longer than") || strings.Contains(err.Error(), "larger than 16 MiB")) {
					t.Fatalf("want a refusal naming the length, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			pw, err := c.Password()
			if err != nil || pw != long {
				t.Fatalf("password of %d bytes, want %d (%v)", len(pw), len(long), err)
			}
		})
	}
}

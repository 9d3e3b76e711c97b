package config

import (
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaults(t *testing.T) {
	c, err := Parse("escrow.yaml", []byte("repository: /srv/repo\npassword_file: /etc/escrow/password\nsources:\n  - path: /var/www/site\ndatabases:\n  - type: mysql\n    all: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	want := &Config{
		File:         "escrow.yaml",
		Repository:   "/srv/repo",
		PasswordFile: "/etc/escrow/password",
		Host:         host,
		Sources:      []Source{{Path: "/var/www/site", Watch: true}},
		Databases:    []Database{{Type: MySQL, Name: "mysql", All: true, Every: time.Hour}},
		Schedule:     Schedule{QuietPeriod: 10 * time.Second, MaxDelay: 60 * time.Second, RescanEvery: 6 * time.Hour},
		Limits:       Limits{UploadBandwidth: 0, CPUPriority: "low", IOPriority: "low", Parallelism: 2},
		StateDir:     "/var/lib/escrow",
		Log:          Log{Format: "text", Level: slog.LevelInfo},

		HeartbeatEvery: 5 * time.Minute,
		Notify:         Notify{RepeatAfter: 24 * time.Hour, Email: Email{TLS: "starttls"}},
	}
	c.lines = nil
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestValues(t *testing.T) {
	c, err := Parse("escrow.yaml", []byte(`repository: s3:http://127.0.0.1:9000/bucket/site1
password_file: /etc/escrow/password
host: web1
s3: {access_key_id: AK, region: eu-west-1}
sources:
  - path: /var/www/site/
    exclude: ["*.log"]
    exclude_file: [/etc/escrow/excludes]
    watch: false
    one_file_system: true
    tags: [site, www]
databases:
  - type: postgres
    host: db.example.com
    databases: [shop, blog]
    every: 1d12h
  - type: postgres
    host: /var/run/postgresql
    port: 5433
    all: true
schedule: {quiet_period: 500ms, max_delay: 2m, rescan_every: 2d}
limits: {upload_bandwidth: 40Mbit/s, cpu_priority: normal, io_priority: idle, parallelism: 64}
log: {format: json, level: debug}
`))
	if err != nil {
		t.Fatal(err)
	}
	s, db := c.Sources[0], c.Databases
	switch {
	case c.Host != "web1" || c.S3.Region != "eu-west-1" || c.S3.AccessKeyID != "AK":
		t.Errorf("host or s3: %+v", c)
	case s.Path != "/var/www/site" || s.Watch || !s.OneFileSystem || len(s.Tags) != 2 || s.ExcludeFile[0] != "/etc/escrow/excludes":
		t.Errorf("source: %+v", s)
	case db[0].Name != "postgres-db.example.com" || db[0].Every != 36*time.Hour || len(db[0].Databases) != 2:
		t.Errorf("database 0: %+v", db[0])
	case db[1].Name != "postgres" || db[1].Port != 5433 || !db[1].All || db[1].Every != time.Hour:
		t.Errorf("database 1: %+v", db[1])
	case c.Schedule != Schedule{500 * time.Millisecond, 2 * time.Minute, 48 * time.Hour}:
		t.Errorf("schedule: %+v", c.Schedule)
	case c.Limits != Limits{5_000_000, "normal", "idle", 64}:
		t.Errorf("limits: %+v", c.Limits)
	case c.Log != Log{"json", slog.LevelDebug}:
		t.Errorf("log: %+v", c.Log)
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"10s", 10 * time.Second}, {"1h30m", 90 * time.Minute}, {"100ms", 100 * time.Millisecond},
		{"2d", 48 * time.Hour}, {"1d12h", 36 * time.Hour}, {"0d", 0},
		{"10", -1}, {"d", -1}, {"2days", -1}, {"1.5d", -1}, {"1d-1h", -1}, {"", -1}, {"1 h", -1},
	} {
		got, err := parseDuration(tc.in)
		if tc.want < 0 && err == nil || tc.want >= 0 && (err != nil || got != tc.want) {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseBandwidth(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // -1: an error
	}{
		{"0", 0}, {"0B/s", 0}, {"5MiB/s", 5 << 20}, {"500KB/s", 500_000}, {"500kB/s", 500_000},
		{"40Mbit/s", 5_000_000}, {"40Mbps", 5_000_000}, {"1.5 MB/s", 1_500_000}, {"1GiB", 1 << 30},
		{"8bit/s", 1}, {"100 B/s", 100},
		{"500", -1}, {"5 mbps", -1}, {"5mb/s", -1}, {"-5MiB/s", -1}, {"1bit/s", -1}, {"fast", -1}, {"", -1},
		{"1e3KB/s", -1}, {"99999999GB/s", -1},
	} {
		got, err := parseBandwidth(tc.in)
		if tc.want < 0 && err == nil || tc.want >= 0 && (err != nil || got != tc.want) {
			t.Errorf("parseBandwidth(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

// fieldPaths lists every key of the schema from the Config struct's tags,
// as "schedule.quiet_period" and "sources[].path".
func fieldPaths(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		key := f.Tag.Get("yaml")
		if key == "" || key == "-" {
			continue
		}
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			out = append(out, path)
			out = append(out, fieldPaths(f.Type, path)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out = append(out, path)
			out = append(out, fieldPaths(f.Type.Elem(), path+"[]")...)
		default:
			out = append(out, path)
		}
	}
	return out
}

// Every exported field of every struct has a key: a field added without a
// tag would be invisible to the file, the example and the docs.
func TestEveryFieldHasAKey(t *testing.T) {
	for _, typ := range []reflect.Type{reflect.TypeFor[Config](), reflect.TypeFor[S3](), reflect.TypeFor[Source](),
		reflect.TypeFor[Database](), reflect.TypeFor[Schedule](), reflect.TypeFor[Limits](), reflect.TypeFor[Log](),
		reflect.TypeFor[Notify](), reflect.TypeFor[Webhook](), reflect.TypeFor[Email]()} {
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() && f.Tag.Get("yaml") == "" {
				t.Errorf("%s.%s has no yaml tag", typ.Name(), f.Name)
			}
		}
	}
}

// The decoder's tables accept exactly the keys the struct tags name.
func TestFieldTablesMatchTags(t *testing.T) {
	d := &decoder{problems: &problems{lines: map[string]int{}}}
	for _, tc := range []struct {
		fields []field
		typ    reflect.Type
	}{
		{d.topFields(&Config{}), reflect.TypeFor[Config]()},
		{d.s3Fields(&S3{}), reflect.TypeFor[S3]()},
		{d.sourceFields(&Source{}), reflect.TypeFor[Source]()},
		{d.databaseFields(&Database{}), reflect.TypeFor[Database]()},
		{d.scheduleFields(&Schedule{}), reflect.TypeFor[Schedule]()},
		{d.limitsFields(&Limits{}), reflect.TypeFor[Limits]()},
		{d.logFields(&Log{}), reflect.TypeFor[Log]()},
		{d.notifyFields(&Notify{}), reflect.TypeFor[Notify]()},
	} {
		var keys []string
		for _, f := range tc.fields {
			keys = append(keys, f.key)
		}
		if want := tagKeys(tc.typ); !slices.Equal(keys, want) {
			t.Errorf("%s: decoder keys %v, tags %v", tc.typ.Name(), keys, want)
		}
	}
}

// exampleKeys lists the keys the example actually sets (not ones only in
// comments), as fieldPaths names them.
func exampleKeys(t *testing.T) map[string]bool {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(Example()), &doc); err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if prefix != "" {
					p = prefix + "." + p
				}
				keys[p] = true
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for _, item := range n.Content {
				walk(item, prefix+"[]")
			}
		}
	}
	walk(doc.Content[0], "")
	return keys
}

// The example parses, shows every field, and shows each optional one at
// its default.
func TestExample(t *testing.T) {
	c, err := Parse("example.yaml", []byte(Example()))
	if err != nil {
		t.Fatal(err)
	}
	keys := exampleKeys(t)
	for _, p := range fieldPaths(reflect.TypeFor[Config](), "") {
		if !keys[p] {
			t.Errorf("Example() does not set %s", p)
		}
	}
	def := defaults()
	switch {
	case c.Schedule != def.Schedule:
		t.Errorf("example schedule %+v, defaults %+v", c.Schedule, def.Schedule)
	case c.Limits != def.Limits:
		t.Errorf("example limits %+v, defaults %+v", c.Limits, def.Limits)
	case c.Log != def.Log || c.StateDir != def.StateDir:
		t.Errorf("example log or state_dir differ from the defaults: %+v %s", c.Log, c.StateDir)
	case !c.Sources[0].Watch || c.Sources[0].OneFileSystem || len(c.Sources[0].ExcludeFile) != 0:
		t.Errorf("example source differs from the defaults: %+v", c.Sources[0])
	case c.Databases[0].Every != DefaultEvery || c.Databases[2].Every != DefaultEvery:
		t.Errorf("example database schedule differs from the default: %+v", c.Databases)
	}
	if h, _ := os.Hostname(); c.Host != h || c.S3.Region != "" || c.S3.SessionTokenFile != "" || c.S3.CAFile != "" {
		t.Errorf("example host or s3 differ from the defaults: %q %+v", c.Host, c.S3)
	}
}

// docs/config.md describes every field and quotes the example whole, so the
// two cannot drift apart.
func TestDocs(t *testing.T) {
	b, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	docs := string(b)
	for _, p := range fieldPaths(reflect.TypeFor[Config](), "") {
		if !strings.Contains(docs, "`"+p+"`") {
			t.Errorf("docs/config.md does not describe `%s`", p)
		}
	}
	if !strings.Contains(docs, "```yaml\n"+Example()+"```\n") {
		t.Error("docs/config.md does not quote Example() exactly (in a ```yaml block)")
	}
}

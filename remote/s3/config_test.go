package s3

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in   string
		want Config
	}{
		{"s3:https://s3.amazonaws.com/bucket", Config{Endpoint: "s3.amazonaws.com", UseHTTPS: true, Bucket: "bucket"}},
		{"s3:https://s3.amazonaws.com/bucket/", Config{Endpoint: "s3.amazonaws.com", UseHTTPS: true, Bucket: "bucket"}},
		{"s3:http://127.0.0.1:9000/bkt/some/prefix", Config{Endpoint: "127.0.0.1:9000", Bucket: "bkt", Prefix: "some/prefix"}},
		{"s3:minio.lan:9000/bkt/p", Config{Endpoint: "minio.lan:9000", UseHTTPS: true, Bucket: "bkt", Prefix: "p"}},
		{"s3:minio.lan/bkt", Config{Endpoint: "minio.lan", UseHTTPS: true, Bucket: "bkt"}},
		{"s3:http://[::1]:9000/bkt//a//b/", Config{Endpoint: "[::1]:9000", Bucket: "bkt", Prefix: "a/b"}},
		{"s3:https://[2001:db8::1]/bkt", Config{Endpoint: "[2001:db8::1]", UseHTTPS: true, Bucket: "bkt"}},
		{"s3:https://my_host.example.com/b-1.x", Config{Endpoint: "my_host.example.com", UseHTTPS: true, Bucket: "b-1.x"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseURL(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
			// Location is an address ParseURL reads back to the same Config.
			again, err := ParseURL(got.Location())
			if err != nil || again != got {
				t.Errorf("Location %q does not round-trip: %#v, %v", got.Location(), again, err)
			}
		})
	}
}

func TestParseURLErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", `does not start with "s3:"`},
		{"https://host/bucket", `does not start with "s3:"`},
		{"s3:", "host is missing"},
		{"s3:https://", "host is missing"},
		{"s3:https:///bucket", "host is missing"},
		{"s3:host", "bucket is missing"},
		{"s3:host/", "bucket is missing"},
		{"s3:https://host", "bucket is missing"},
		{"s3:https://host//prefix", "bucket is missing"},
		{"s3:ftp://host/bucket", `scheme "ftp"`},
		{"s3://host/bucket", "empty scheme"},
		{"s3:host:notaport/bucket", "port"},
		{"s3:host:0/bucket", "port"},
		{"s3:host:70000/bucket", "port"},
		{"s3:host:/bucket", "empty port"},
		{"s3:ho st/bucket", "not a host name"},
		{"s3:-host/bucket", "not a host name"},
		{"s3:host..com/bucket", "not a host name"},
		{"s3:host/BadBucket", "bucket name"},
		{"s3:host/b", "bucket name"},
		{"s3:host/bucket?x=1", "query"},
		{"s3:host/bucket/../x", `".."`},
		{"s3:https://key:secretvalue@host/bucket", "credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseURL(tt.in)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("%q does not mention %q", msg, tt.want)
			}
			if !strings.Contains(msg, "s3:https://HOST[:PORT]/BUCKET[/PREFIX]") {
				t.Errorf("%q does not show the expected form", msg)
			}
			if strings.Contains(msg, "secretvalue") {
				t.Errorf("%q echoes a secret from the address", msg)
			}
		})
	}
}

func TestApplyEnv(t *testing.T) {
	env := map[string]string{
		"AWS_ACCESS_KEY_ID":     "AKID",
		"AWS_SECRET_ACCESS_KEY": "s3cr3t",
		"AWS_SESSION_TOKEN":     "tok",
		"AWS_DEFAULT_REGION":    "eu-west-1",
	}
	getenv := func(k string) string { return env[k] }

	var c Config
	c.ApplyEnv(getenv)
	want := Config{KeyID: "AKID", Secret: "s3cr3t", SessionToken: "tok", Region: "eu-west-1"}
	if c != want {
		t.Errorf("got %#v, want %#v", c, want)
	}

	c = Config{KeyID: "explicit", Secret: "explicit-secret"}
	c.ApplyEnv(getenv)
	want = Config{KeyID: "explicit", Secret: "explicit-secret", SessionToken: "tok", Region: "eu-west-1"}
	if c != want {
		t.Errorf("set fields must win: got %#v", c)
	}

	c = Config{}
	c.ApplyEnv(func(string) string { return "" })
	if c != (Config{}) {
		t.Errorf("empty environment changed %#v", c)
	}
}

func TestConfigNeverShowsSecret(t *testing.T) {
	c := Config{Endpoint: "host:9000", Bucket: "bkt", Prefix: "p", KeyID: "AKID", Secret: "TOPSECRET", SessionToken: "SESSIONTOKEN"}
	var logBuf bytes.Buffer
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "cfg", c, "ptr", &c)
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "cfg", c)
	outputs := map[string]string{
		"String":   c.String(),
		"Location": c.Location(),
		"%v":       fmt.Sprintf("%v", c),
		"%+v":      fmt.Sprintf("%+v", c),
		"%#v":      fmt.Sprintf("%#v", c),
		"%s ptr":   fmt.Sprintf("cfg=%s", &c),
		"slog":     logBuf.String(),
	}
	for name, out := range outputs {
		if strings.Contains(out, "TOPSECRET") || strings.Contains(out, "SESSIONTOKEN") {
			t.Errorf("%s shows a secret: %s", name, out)
		}
	}
	if got, want := c.Location(), "s3:http://host:9000/bkt/p"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if !strings.Contains(c.String(), "AKID") {
		t.Errorf("String %q should name the access key ID", c.String())
	}
}

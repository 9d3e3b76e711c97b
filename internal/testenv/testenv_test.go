package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestMain(m *testing.M) { Main(m) }

// recorder is a testing.TB that records Fatal and Skip instead of ending
// the goroutine, so the CI/local decision can be tested.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

func TestRequireBinary(t *testing.T) {
	if p := RequireBinary(t, "sh"); !strings.HasSuffix(p, "/sh") {
		t.Errorf("RequireBinary(sh) = %q", p)
	}

	tests := []struct {
		ci        string
		wantFatal bool
	}{
		{"true", true},
		{"", false},
		{"false", false},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			RequireBinary(r, "escrow-no-such-program")
			if tt.wantFatal && (r.fatal == "" || r.skip != "") {
				t.Errorf("CI=%s: fatal %q, skip %q; want a failure", tt.ci, r.fatal, r.skip)
			}
			if !tt.wantFatal && (r.skip == "" || r.fatal != "") {
				t.Errorf("CI=%s: fatal %q, skip %q; want a skip", tt.ci, r.fatal, r.skip)
			}
			if msg := r.fatal + r.skip; !strings.Contains(msg, "escrow-no-such-program") {
				t.Errorf("message %q does not name the program", msg)
			}
		})
	}
}

func TestExternalServer(t *testing.T) {
	tests := []struct {
		ep, key, secret string
		want            Server
		wantErr         bool
	}{
		{"host:9000", "k", "s", Server{Endpoint: "host:9000", AccessKey: "k", SecretKey: "s", External: true}, false},
		{"https://host", "k", "s", Server{Endpoint: "host", Secure: true, AccessKey: "k", SecretKey: "s", External: true}, false},
		{"http://host:1", "k", "s", Server{Endpoint: "host:1", AccessKey: "k", SecretKey: "s", External: true}, false},
		{"host:9000", "", "s", Server{}, true},
		{"host:9000", "k", "", Server{}, true},
	}
	for _, tt := range tests {
		got, err := externalServer(tt.ep, tt.key, tt.secret)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("externalServer(%q, %q, %q) = %+v, %v", tt.ep, tt.key, tt.secret, got, err)
		}
	}
}

func TestServerURL(t *testing.T) {
	s := Server{Endpoint: "127.0.0.1:9000"}
	if got, want := s.URL("bkt", ""), "s3:http://127.0.0.1:9000/bkt"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	s.Secure = true
	if got, want := s.URL("bkt", "a/b"), "s3:https://127.0.0.1:9000/bkt/a/b"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
}

func TestMinIO(t *testing.T) {
	s := MinIO(t)
	again := MinIO(t)
	if s != again {
		t.Errorf("second call returned another server: %+v vs %+v", again, s)
	}
	if !s.External {
		resp, err := http.Get("http://" + s.Endpoint + "/minio/health/live")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("health: %s", resp.Status)
		}
	}

	b1, b2 := s.NewBucket(t), s.NewBucket(t)
	if b1 == b2 {
		t.Errorf("two buckets named %s", b1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.Client(t)
	for _, b := range []string{b1, b2} {
		ok, err := c.BucketExists(ctx, b)
		if err != nil || !ok {
			t.Errorf("bucket %s: exists %v, %v", b, ok, err)
		}
	}
	if _, err := c.PutObject(ctx, b1, "x", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Errorf("put: %v", err)
	}
}

// TestRestartableMinIO stops a server of the test's own and starts it again
// on the same address: connections are refused meanwhile, and what was
// stored before is still there after.
func TestRestartableMinIO(t *testing.T) {
	m := NewRestartableMinIO(t)
	bucket := m.NewBucket(t)
	c := m.Client(t)
	ctx := context.Background()
	if _, err := c.PutObject(ctx, bucket, "kept", strings.NewReader("before the outage"), -1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	m.Stop()
	if m.Running() {
		t.Error("Running after Stop")
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	if resp, err := hc.Get("http://" + m.Endpoint + "/minio/health/live"); err == nil {
		resp.Body.Close()
		t.Fatalf("a stopped server answered %s", resp.Status)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	obj, err := c.GetObject(ctx, bucket, "kept", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, obj); err != nil || b.String() != "before the outage" {
		t.Errorf("after the restart: %q, %v", b.String(), err)
	}
}

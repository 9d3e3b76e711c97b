package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/remotetest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// minioConfig returns a Config for a fresh bucket (or, with prefix, a fresh
// prefix in a fresh bucket) on the test server.
func minioConfig(t *testing.T, prefix string) Config {
	srv := testenv.MinIO(t)
	cfg, err := ParseURL(srv.URL(srv.NewBucket(t), prefix))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnv(func(k string) string {
		return map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey}[k]
	})
	return cfg
}

func randomPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "repo-" + hex.EncodeToString(b[:])
}

func TestConformance(t *testing.T) {
	for _, withPrefix := range []bool{true, false} {
		name := "NoPrefix"
		if withPrefix {
			name = "Prefix"
		}
		t.Run(name, func(t *testing.T) {
			remotetest.Run(t, func(t *testing.T) remote.Backend {
				prefix := ""
				if withPrefix {
					prefix = randomPrefix() + "/nested"
				}
				b, err := Create(context.Background(), minioConfig(t, prefix))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				return b
			})
		})
	}
}

func TestConformanceWithRetry(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Backend {
		b, err := Create(context.Background(), minioConfig(t, randomPrefix()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return remote.WithRetry(b, remote.RetryOptions{MaxElapsed: 10 * time.Second})
	})
}

func TestOpenMissingBucket(t *testing.T) {
	cfg := minioConfig(t, "")
	cfg.Bucket = "escrow-no-such-bucket"
	_, err := Open(context.Background(), cfg)
	if !remote.IsPermanent(err) || remote.IsNotFound(err) {
		t.Fatalf("Open of a missing bucket: %v, want a permanent error", err)
	}
	for _, want := range []string{`"escrow-no-such-bucket"`, "does not exist", "create it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	cfg := minioConfig(t, "p")
	cfg.Bucket += "-new" // Create makes the bucket

	b, err := Create(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := Open(ctx, cfg); err != nil {
		t.Fatalf("Open after Create: %v", err)
	}
	// A second Create on an empty prefix is fine …
	if _, err := Create(ctx, cfg); err != nil {
		t.Fatalf("Create again without a config: %v", err)
	}
	// … but not over a repository.
	if err := b.Save(ctx, remote.Handle{Type: remote.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	_, err = Create(ctx, cfg)
	if !errors.Is(err, remote.ErrExists) || !strings.Contains(err.Error(), "a repository already exists") {
		t.Fatalf("Create over a repository: %v", err)
	}
	// Another prefix in the same bucket is another repository.
	other := cfg
	other.Prefix = "q"
	if _, err := Create(ctx, other); err != nil {
		t.Fatalf("Create beside a repository: %v", err)
	}
}

func TestWrongCredentials(t *testing.T) {
	ctx := context.Background()
	good := minioConfig(t, "")

	tests := []struct {
		name  string
		keyID string
		sec   string
		want  string
	}{
		{"wrong secret", good.KeyID, "not-the-secret-at-all", "AWS_SECRET_ACCESS_KEY"},
		{"unknown key", "NOSUCHKEYID", "not-the-secret-at-all", "AWS_ACCESS_KEY_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			cfg.KeyID, cfg.Secret = tt.keyID, tt.sec
			_, err := Open(ctx, cfg)
			if !remote.IsPermanent(err) {
				t.Fatalf("Open with %s: %v, want a permanent error", tt.name, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, tt.keyID) {
				t.Errorf("%q should name the key ID %s and say to check %s", msg, tt.keyID, tt.want)
			}
			if strings.Contains(msg, tt.sec) || strings.Contains(msg, good.Secret) {
				t.Errorf("%q shows a secret", msg)
			}
		})
	}
}

func TestMissingCredentials(t *testing.T) {
	_, err := Open(context.Background(), Config{Endpoint: "localhost:1", Bucket: "bkt"})
	if !remote.IsPermanent(err) || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Fatalf("Open without credentials: %v", err)
	}
}

// fakeS3 answers every request with the same S3 error.
func fakeS3(t *testing.T, status int, code string) Config {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>msg</Message><BucketName>bkt</BucketName><RequestId>1</RequestId></Error>`)
		}
	}))
	t.Cleanup(srv.Close)
	return Config{Endpoint: srv.Listener.Addr().String(), Bucket: "bkt", Prefix: "pre", KeyID: "AKIDEXAMPLE", Secret: "SECRETEXAMPLE", Region: "us-east-1"}
}

func TestErrorClassificationFromServer(t *testing.T) {
	tests := []struct {
		status   int
		code     string
		class    string // "notfound", "permanent", "retriable"
		mentions []string
	}{
		{404, "NoSuchKey", "notfound", nil},
		{403, "AccessDenied", "permanent", []string{`"bkt"`, "AKIDEXAMPLE", "grant s3:GetObject on bkt/pre/*"}},
		{403, "InvalidAccessKeyId", "permanent", []string{"AKIDEXAMPLE", "AWS_ACCESS_KEY_ID"}},
		{403, "SignatureDoesNotMatch", "permanent", []string{"AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY"}},
		{404, "NoSuchBucket", "permanent", []string{`"bkt"`, "create it"}},
		{400, "InvalidBucketName", "permanent", []string{`"bkt"`}},
		{403, "AllAccessDisabled", "permanent", []string{`"bkt"`}},
		{403, "RequestTimeTooSkewed", "permanent", []string{"clock"}},
		{500, "InternalError", "retriable", nil},
		{503, "SlowDown", "retriable", nil},
		{502, "BadGateway", "retriable", nil},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			cfg := fakeS3(t, tt.status, tt.code)
			b, err := connect(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			h := remote.Handle{Type: remote.PackFile, Name: "abcdef"}
			_, err = b.Load(context.Background(), h, 0, 0)
			switch tt.class {
			case "notfound":
				if !remote.IsNotFound(err) {
					t.Errorf("got %v, want ErrNotFound", err)
				}
			case "permanent":
				if !errors.Is(err, remote.ErrPermanent) || remote.IsNotFound(err) {
					t.Errorf("got %v, want ErrPermanent", err)
				}
			case "retriable":
				if err == nil || remote.IsPermanent(err) {
					t.Errorf("got %v, want a retriable error", err)
				}
			}
			for _, m := range tt.mentions {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("%q does not mention %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "SECRETEXAMPLE") {
				t.Errorf("%q shows the secret", err)
			}
		})
	}
}

func TestConnectionErrorsAreRetriable(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	b, err := connect(Config{Endpoint: addr, Bucket: "bkt", KeyID: "AKID", Secret: "SECRETEXAMPLE", Region: "us-east-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.Stat(context.Background(), remote.Handle{Type: remote.KeyFile, Name: "abcd"})
	if err == nil || remote.IsPermanent(err) {
		t.Fatalf("connection refused: %v, want a retriable error", err)
	}
	if strings.Contains(err.Error(), "SECRETEXAMPLE") || strings.Contains(err.Error(), "X-Amz-Signature") {
		t.Errorf("%q leaks credentials", err)
	}
}

// cutBody lets the headers through and cuts GET bodies after a few bytes,
// like a connection reset mid-transfer.
type cutBody struct {
	rt  http.RoundTripper
	cut atomic.Bool
}

func (c *cutBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err != nil || r.Method != http.MethodGet || !c.cut.Load() || resp.StatusCode >= 300 {
		return resp, err
	}
	resp.Body = &failingBody{rc: resp.Body, left: 10}
	return resp, nil
}

type failingBody struct {
	rc   io.ReadCloser
	left int
}

func (f *failingBody) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, errors.New("read tcp: connection reset by peer")
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.rc.Read(p)
	f.left -= n
	return n, err
}

func (f *failingBody) Close() error { return f.rc.Close() }

func TestTruncatedBody(t *testing.T) {
	ctx := context.Background()
	tr := &cutBody{rt: http.DefaultTransport}
	b, err := Create(ctx, minioConfig(t, ""), WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	h := remote.Handle{Type: remote.PackFile, Name: "abcdef"}
	data := make([]byte, 1000)
	if err := b.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	tr.cut.Store(true)

	rd, err := b.Load(ctx, h, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rd)
	rd.Close()
	if err == nil || remote.IsPermanent(err) {
		t.Fatalf("read of a cut body: %d bytes, err %v; want a retriable error", len(got), err)
	}

	// The retry wrapper reads again until the whole range arrives.
	var fails atomic.Int32
	rb := remote.WithRetry(b, remote.RetryOptions{
		Sleep: func(context.Context, time.Duration) error {
			if fails.Add(1) == 2 {
				tr.cut.Store(false)
			}
			return nil
		},
	})
	rd, err = rb.Load(ctx, h, 100, 500)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(rd)
	if err != nil || len(got) != 500 {
		t.Fatalf("retried load: %d bytes, %v", len(got), err)
	}
	if fails.Load() != 2 {
		t.Errorf("retried %d times, want 2", fails.Load())
	}
}

func TestTLSVerified(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK) // every bucket exists
	}))
	defer srv.Close()
	cfg := Config{Endpoint: srv.Listener.Addr().String(), UseHTTPS: true, Bucket: "bkt", KeyID: "AKID", Secret: "SECRETEXAMPLE", Region: "us-east-1"}

	_, err := Open(context.Background(), cfg)
	if !remote.IsPermanent(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Open of a server with an untrusted certificate: %v, want a permanent certificate error", err)
	}

	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	b, err := Open(context.Background(), cfg, WithRootCAs(pool))
	if err != nil {
		t.Fatalf("Open trusting the server's CA: %v", err)
	}
	b.Close()
}

func TestPlainHTTPServerOverHTTPS(t *testing.T) {
	cfg := fakeS3(t, 200, "")
	cfg.UseHTTPS = true
	_, err := Open(context.Background(), cfg)
	if !remote.IsPermanent(err) || !strings.Contains(err.Error(), "s3:http://") {
		t.Fatalf("HTTPS to a plain HTTP server: %v, want a permanent error suggesting s3:http://", err)
	}
}

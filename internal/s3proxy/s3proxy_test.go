package s3proxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/escrow-backup/escrow/internal/s3proxy"
	"github.com/escrow-backup/escrow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestProxyRecords sends signed requests through the proxy to MinIO and
// checks that they work and that each is recorded with its answer.
func TestProxyRecords(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	scheme := "http://"
	if srv.Secure {
		scheme = "https://"
	}
	p, err := s3proxy.New(scheme + srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := minio.New(p.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := []byte("hello through the proxy")
	if _, err := c.PutObject(ctx, bucket, "a/b", bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{SendContentMd5: true, DisableMultipart: true}); err != nil {
		t.Fatalf("put through the proxy: %v", err)
	}
	obj, err := c.GetObject(ctx, bucket, "a/b", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get through the proxy: %q, %v", got, err)
	}
	if _, err := c.StatObject(ctx, bucket, "missing", minio.StatObjectOptions{}); err == nil {
		t.Fatal("stat of a missing object succeeded")
	}
	if err := c.RemoveObject(ctx, bucket, "a/b", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	var put, del, missing bool
	for _, r := range p.Requests() {
		switch {
		case r.Method == http.MethodPut && r.Path == "/"+bucket+"/a/b":
			put = r.Status == http.StatusOK && r.ContentMD5
		case r.Method == http.MethodDelete && r.Path == "/"+bucket+"/a/b":
			del = r.Status == http.StatusNoContent
		case r.Method == http.MethodHead && r.Path == "/"+bucket+"/missing":
			missing = r.Status == http.StatusNotFound
		}
	}
	if !put || !del || !missing {
		t.Errorf("recorded put %v (200, Content-MD5), delete %v (204), missing head %v (404):\n%v", put, del, missing, p.Requests())
	}
	if n := p.Counts()[http.MethodDelete]; n != 1 {
		t.Errorf("%d DELETE counted, want 1", n)
	}
	t.Logf("requests: %s", p.Summary())
}

// faultSetup is a proxy in front of MinIO with a client that tries every
// request once, so that each injected fault reaches the test.
type faultSetup struct {
	p      *s3proxy.Proxy
	c      *minio.Client
	bucket string
}

func newFaultSetup(t *testing.T) faultSetup {
	t.Helper()
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	scheme := "http://"
	if srv.Secure {
		scheme = "https://"
	}
	p, err := s3proxy.New(scheme + srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c, err := minio.New(p.Endpoint(), &minio.Options{
		Creds:      credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
		MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return faultSetup{p: p, c: c, bucket: bucket}
}

func (s faultSetup) put(key string, data []byte) error {
	_, err := s.c.PutObject(context.Background(), s.bucket, key, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{SendContentMd5: true, DisableMultipart: true})
	return err
}

func (s faultSetup) get(key string) ([]byte, error) {
	obj, err := s.c.GetObject(context.Background(), s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	return io.ReadAll(obj)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{byte(n), byte(n >> 8)}).Read(b)
	return b
}

// TestFaultStatus answers 503 and then 500 to the next GETs of a prefix,
// and nothing else.
func TestFaultStatus(t *testing.T) {
	s := newFaultSetup(t)
	data := randomBytes(1000)
	if err := s.put("data/a", data); err != nil {
		t.Fatal(err)
	}
	prefix := "/" + s.bucket + "/data/"
	s.p.Inject(s3proxy.Rule{Method: http.MethodGet, PathPrefix: prefix, Count: 1, Action: s3proxy.Fail, Status: http.StatusServiceUnavailable})
	s.p.Inject(s3proxy.Rule{Method: http.MethodGet, PathPrefix: prefix, Count: 1, Action: s3proxy.Fail, Status: http.StatusInternalServerError})
	for _, want := range []int{503, 500} {
		_, err := s.get("data/a")
		if got := minio.ToErrorResponse(err).StatusCode; got != want {
			t.Errorf("GET answered %d (%v), want %d", got, err, want)
		}
	}
	if err := s.put("data/b", data); err != nil {
		t.Errorf("a PUT matched a GET rule: %v", err)
	}
	if got, err := s.get("data/a"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("GET after the rules were used up: %v", err)
	}
	if f := s.p.Faulted(); f["status 503"] != 1 || f["status 500"] != 1 || len(f) != 2 {
		t.Errorf("faults logged: %v, want one 503 and one 500", f)
	}
}

// TestFaultLatency delays matching requests only.
func TestFaultLatency(t *testing.T) {
	s := newFaultSetup(t)
	if err := s.put("x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.p.Inject(s3proxy.Rule{Method: http.MethodGet, Latency: 300 * time.Millisecond})
	start := time.Now()
	if _, err := s.get("x"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("delayed GET took %v, want at least 300ms", d)
	}
	s.p.Clear()
	start = time.Now()
	if _, err := s.get("x"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d >= 300*time.Millisecond {
		t.Errorf("GET after Clear took %v, still delayed", d)
	}
}

// TestFaultResetMidPut resets an upload after some of its body: the client
// sees an error and the server stores nothing.
func TestFaultResetMidPut(t *testing.T) {
	s := newFaultSetup(t)
	s.p.Inject(s3proxy.Rule{Method: http.MethodPut, Count: 1, Action: s3proxy.Reset, Bytes: 1000})
	data := randomBytes(256 << 10)
	if err := s.put("big", data); err == nil {
		t.Fatal("an upload reset after 1000 bytes succeeded")
	} else {
		t.Logf("reset upload: %v", err)
	}
	if _, err := s.c.StatObject(context.Background(), s.bucket, "big", minio.StatObjectOptions{}); minio.ToErrorResponse(err).StatusCode != http.StatusNotFound {
		t.Errorf("after a reset upload the object is there or unknown: %v", err)
	}
	if err := s.put("big", data); err != nil {
		t.Fatalf("the next upload: %v", err)
	}
	var reset []s3proxy.Request
	for _, r := range s.p.Requests() {
		if r.Fault != "" {
			reset = append(reset, r)
		}
	}
	if len(reset) != 1 || reset[0].Status != 0 || reset[0].Fault != "reset after 1000 bytes" {
		t.Errorf("logged faults %v, want one reset PUT with no status", reset)
	}
}

// TestFaultTruncate cuts a download short: the client gets an error, never
// a short body it takes for the whole object.
func TestFaultTruncate(t *testing.T) {
	s := newFaultSetup(t)
	data := randomBytes(200 << 10)
	if err := s.put("obj", data); err != nil {
		t.Fatal(err)
	}
	s.p.Inject(s3proxy.Rule{Method: http.MethodGet, Count: 1, Action: s3proxy.Truncate, Bytes: 70000})
	got, err := s.get("obj")
	if err == nil {
		t.Fatalf("a truncated download succeeded with %d of %d bytes", len(got), len(data))
	}
	if len(got) > 70000 || !bytes.Equal(got, data[:len(got)]) {
		t.Errorf("truncated download gave %d bytes, want at most 70000 bytes of the object", len(got))
	}
	if got, err := s.get("obj"); err != nil || !bytes.Equal(got, data) {
		t.Errorf("download after the truncation: %d bytes, %v", len(got), err)
	}
}

// TestFaultFlip flips exactly one bit of a download, at the byte asked
// (modulo the length).
func TestFaultFlip(t *testing.T) {
	s := newFaultSetup(t)
	data := randomBytes(100 << 10)
	if err := s.put("obj", data); err != nil {
		t.Fatal(err)
	}
	at := int64(len(data)) + 12345 // wraps to 12345
	s.p.Inject(s3proxy.Rule{Method: http.MethodGet, PathPrefix: "/" + s.bucket + "/obj", Count: 1, Action: s3proxy.Flip, Bytes: at})
	got, err := s.get("obj")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(data) {
		t.Fatalf("flipped download has %d bytes, want %d", len(got), len(data))
	}
	var diffs []int
	for i := range data {
		if x := got[i] ^ data[i]; x != 0 {
			diffs = append(diffs, i)
			if x&(x-1) != 0 {
				t.Errorf("byte %d differs in more than one bit", i)
			}
		}
	}
	if len(diffs) != 1 || diffs[0] != 12345 {
		t.Errorf("bytes differing: %v, want [12345]", diffs)
	}
}

// TestStopStart refuses connections while stopped, and serves again on the
// same address after Start.
func TestStopStart(t *testing.T) {
	s := newFaultSetup(t)
	if err := s.put("x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.p.Stop()
	s.p.Stop() // twice is harmless
	_, err := s.get("x")
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("GET while stopped: %v, want connection refused", err)
	}
	if err := s.p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := s.p.Start(); err != nil {
		t.Fatal(err)
	}
	if got, err := s.get("x"); err != nil || string(got) != "x" {
		t.Errorf("GET after Start: %q, %v", got, err)
	}
}

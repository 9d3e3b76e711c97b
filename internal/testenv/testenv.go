// Package testenv provides the external programs and servers that tests
// across the project need: a MinIO server for S3 tests, MariaDB and
// PostgreSQL servers for database tests, and binaries such as restic.
//
// When something is missing, a test is skipped on a developer's machine but
// fails when CI=true: in CI a missing integration dependency is a broken
// pipeline, not a reason to pass.
//
// A package that starts servers must stop them when its test binary ends:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Main runs the tests, stops the servers that were started, runs cleanup
// (os.Exit skips deferred calls), and exits. Call it from TestMain.
func Main(m *testing.M, cleanup ...func()) {
	code := m.Run()
	shared.stop()
	stopDatabases()
	for _, f := range cleanup {
		f()
	}
	os.Exit(code)
}

// InCI reports whether the tests run in CI (CI=true), where missing
// dependencies fail tests instead of skipping them.
func InCI() bool { return os.Getenv("CI") == "true" }

// unavailable skips the test, or fails it in CI.
func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("%s (CI=true: a missing test dependency is a failure; run scripts/test-deps.sh)", msg)
		return
	}
	t.Skipf("%s (run scripts/test-deps.sh to install it)", msg)
}

// RequireBinary returns the path of the named program in PATH, or skips the
// test (fails it in CI) if there is none.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		unavailable(t, "%s not found in PATH", name)
	}
	return p
}

// Server is an S3 server for tests, with root credentials.
type Server struct {
	Endpoint  string // host:port
	Secure    bool   // speak HTTPS
	AccessKey string
	SecretKey string
	// SessionToken goes with temporary credentials (NewTemporaryUser).
	SessionToken string
	// External is true for a server named by ESCROW_TEST_S3_ENDPOINT, which
	// outlives the tests; buckets made on it are removed after each test.
	External bool
}

// MinIO returns the S3 server for tests: the one named by
// ESCROW_TEST_S3_ENDPOINT (with ESCROW_TEST_S3_ACCESS_KEY and
// ESCROW_TEST_S3_SECRET_KEY), or else a MinIO server started once per test
// binary from ESCROW_MINIO_BIN, PATH or $HOME/.cache/escrow-ci/bin/minio.
func MinIO(t testing.TB) Server {
	t.Helper()
	if ep := os.Getenv("ESCROW_TEST_S3_ENDPOINT"); ep != "" {
		s, err := externalServer(ep, os.Getenv("ESCROW_TEST_S3_ACCESS_KEY"), os.Getenv("ESCROW_TEST_S3_SECRET_KEY"))
		if err != nil {
			t.Fatal(err) // configured but broken: never skip
		}
		return s
	}
	s, err := shared.get()
	if err != nil {
		unavailable(t, "no MinIO server for S3 tests: %v", err)
	}
	return s
}

func externalServer(ep, key, secret string) (Server, error) {
	s := Server{Endpoint: ep, AccessKey: key, SecretKey: secret, External: true}
	if rest, ok := strings.CutPrefix(ep, "https://"); ok {
		s.Endpoint, s.Secure = rest, true
	} else if rest, ok := strings.CutPrefix(ep, "http://"); ok {
		s.Endpoint = rest
	}
	if key == "" || secret == "" {
		return Server{}, errors.New("ESCROW_TEST_S3_ENDPOINT is set but ESCROW_TEST_S3_ACCESS_KEY or ESCROW_TEST_S3_SECRET_KEY is empty")
	}
	return s, nil
}

// URL returns the repository address of bucket/prefix on s in the form
// s3.ParseURL accepts.
func (s Server) URL(bucket, prefix string) string {
	scheme := "http"
	if s.Secure {
		scheme = "https"
	}
	u := "s3:" + scheme + "://" + s.Endpoint + "/" + bucket
	if prefix != "" {
		u += "/" + prefix
	}
	return u
}

// Env returns the AWS_* variables that give access to s, for commands run
// by tests.
func (s Server) Env() []string {
	env := []string{"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey}
	if s.SessionToken != "" {
		env = append(env, "AWS_SESSION_TOKEN="+s.SessionToken)
	}
	return env
}

// Client returns a minio-go client with root access to s.
func (s Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(s.AccessKey, s.SecretKey, s.SessionToken),
		Secure: s.Secure,
	})
	if err != nil {
		t.Fatalf("minio client for %s: %v", s.Endpoint, err)
	}
	return c
}

// NewBucket creates a bucket with a unique name and returns the name. On an
// external server the bucket and its objects are removed when the test
// ends; a server started by this package is thrown away whole by Main.
func (s Server) NewBucket(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "escrow-test-" + hex.EncodeToString(b[:])
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket %s on %s: %v", name, s.Endpoint, err)
	}
	if s.External {
		t.Cleanup(func() { removeBucket(t, c, name) })
	}
	return name
}

func removeBucket(t testing.TB, c *minio.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	objects := c.ListObjects(ctx, name, minio.ListObjectsOptions{Recursive: true})
	for r := range c.RemoveObjects(ctx, name, objects, minio.RemoveObjectsOptions{}) {
		t.Logf("remove test bucket %s: %s: %v", name, r.ObjectName, r.Err)
	}
	if err := c.RemoveBucket(ctx, name); err != nil {
		t.Logf("remove test bucket %s: %v", name, err)
	}
}

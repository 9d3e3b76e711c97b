package doctor

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/s3"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const prefix = "site1"

func examine(t *testing.T, srv testenv.Server, bucket string) *Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := Run(ctx, Bucket{Client: srv.Client(t), Name: bucket, Prefix: prefix, Location: srv.URL(bucket, prefix)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if testing.Verbose() {
		data, _ := json.MarshalIndent(r, "", "  ")
		t.Logf("report: %s", data)
	}
	return r
}

func hostWriter(t *testing.T, srv testenv.Server, bucket string) testenv.Server {
	pol, err := Policy(bucket, prefix, HostWriter, MinIO)
	if err != nil {
		t.Fatal(err)
	}
	return srv.NewUser(t, "host", pol)
}

// want checks the results of the named checks.
func want(t *testing.T, r *Report, res Result, names ...string) {
	t.Helper()
	got := map[string]Check{}
	for _, c := range r.Checks {
		got[c.Name] = c
	}
	for _, n := range names {
		if c, ok := got[n]; !ok || c.Result != res {
			t.Errorf("check %s: %+v, want %s", n, c, res)
		}
	}
}

// found reports whether a finding comes from the named check.
func found(r *Report, check string) bool {
	for _, f := range r.Findings {
		if f.Check == check {
			return f.Fix != "" && f.Problem != ""
		}
	}
	return false
}

var (
	abilities = []string{"put", "get", "list"}
	attacks   = []string{"delete-marker", "shorten-retention", "delete-version", "shorten-retention-bypass", "delete-version-bypass",
		"put-lifecycle", "put-versioning", "put-bucket-policy", "put-object-lock"}
	settings = []string{"put-lifecycle", "put-versioning", "put-bucket-policy", "put-object-lock"}
)

// The host's least-privilege credential on an Object Lock bucket: every
// attack refused, backups possible, in either mode.
func TestHostWriterTamperProof(t *testing.T) {
	srv := testenv.MinIO(t)
	for _, mode := range []string{s3.Compliance, s3.Governance} {
		t.Run(mode, func(t *testing.T) {
			bucket := srv.NewLockedBucket(t, mode, 30)
			r := examine(t, hostWriter(t, srv, bucket), bucket)
			want(t, r, Allowed, abilities...)
			want(t, r, Refused, attacks...)
			wantVerdict := "tamper-proof: versions kept 30 days in " + strings.ToLower(mode) + " mode; this host cannot delete or shorten them"
			if !r.TamperProof || !r.CanBackUp || r.Verdict != wantVerdict || len(r.Findings) != 0 {
				t.Fatalf("verdict %q, findings %+v", r.Verdict, r.Findings)
			}
			if r.Versioning != "enabled" || !r.ObjectLock || *r.Retention != (s3.Retention{Mode: mode, Days: 30}) {
				t.Errorf("protection: %s %v %+v", r.Versioning, r.ObjectLock, r.Retention)
			}
			if u := r.CanaryRetainUntil; u == nil || u.Before(time.Now().Add(29*24*time.Hour)) {
				t.Errorf("canary retained until %v, want 30 days from now", u)
			}
		})
	}
}

// Root can bypass governance mode, but not compliance mode; in both it can
// change the bucket's settings, so neither is tamper-proof against it.
func TestRoot(t *testing.T) {
	srv := testenv.MinIO(t)
	for _, mode := range []string{s3.Compliance, s3.Governance} {
		t.Run(mode, func(t *testing.T) {
			bucket := srv.NewLockedBucket(t, mode, 30)
			r := examine(t, srv, bucket)
			want(t, r, Allowed, abilities...)
			want(t, r, Allowed, "delete-marker")
			want(t, r, Allowed, settings...)
			want(t, r, Refused, "delete-version", "shorten-retention")
			bypass := []string{"shorten-retention-bypass", "delete-version-bypass"}
			if mode == s3.Governance {
				want(t, r, Allowed, bypass...)
			} else {
				want(t, r, Refused, bypass...)
			}
			if r.TamperProof || !strings.HasPrefix(r.Verdict, "NOT tamper-proof: ") {
				t.Fatalf("verdict %q", r.Verdict)
			}
			for _, n := range append([]string{"delete-marker"}, settings...) {
				if !found(r, n) {
					t.Errorf("no finding for %s", n)
				}
			}
			for _, n := range bypass {
				if found(r, n) != (mode == s3.Governance) {
					t.Errorf("finding for %s in %s mode: %v", n, mode, found(r, n))
				}
			}
			// The probes re-set what they read: the bucket is as before.
			c := srv.Client(t)
			on, ret, err := s3.ReadObjectLock(context.Background(), c, bucket)
			if err != nil || !on || *ret != (s3.Retention{Mode: mode, Days: 30}) {
				t.Errorf("Object Lock after doctor: %v %+v %v", on, ret, err)
			}
			if pol, err := c.GetBucketPolicy(context.Background(), bucket); err != nil || pol != "" {
				t.Errorf("bucket policy after doctor: %q %v", pol, err)
			}
			if _, err := c.GetBucketLifecycle(context.Background(), bucket); err == nil {
				t.Error("doctor left a lifecycle rule")
			}
		})
	}
}

// A read-only credential cannot tamper, and cannot back up either: the
// verdict says both.
func TestVerifier(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewLockedBucket(t, s3.Compliance, 30)
	pol, err := Policy(bucket, prefix, Reader, MinIO)
	if err != nil {
		t.Fatal(err)
	}
	verifier := srv.NewUser(t, "verifier", pol)
	// With nothing in the bucket there is no version to try the
	// retention on: unproven, so not called tamper-proof.
	r := examine(t, verifier, bucket)
	want(t, r, Untested, "shorten-retention", "shorten-retention-bypass")
	if r.TamperProof || r.CanBackUp || !found(r, "shorten-retention") {
		t.Fatalf("verifier on an empty bucket: %q", r.Verdict)
	}
	// The host's run leaves a canary, which the verifier's run then tries.
	examine(t, hostWriter(t, srv, bucket), bucket)
	r = examine(t, verifier, bucket)
	want(t, r, Allowed, "get")
	want(t, r, Refused, "put")
	want(t, r, Allowed, "list")
	want(t, r, Refused, "delete-marker", "delete-version", "delete-version-bypass", "shorten-retention", "shorten-retention-bypass")
	want(t, r, Refused, settings...)
	if !r.TamperProof || r.CanBackUp || !found(r, "put") || !strings.Contains(r.Verdict, "cannot back up: these credentials cannot upload") {
		t.Fatalf("verdict %q, findings %+v", r.Verdict, r.Findings)
	}
}

// A bucket without versioning or Object Lock: not tamper-proof even for the
// least-privilege host, and doctor says what is missing.
func TestNoObjectLock(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	r := examine(t, hostWriter(t, srv, bucket), bucket)
	want(t, r, Allowed, abilities...)
	want(t, r, Refused, "delete-marker", "delete-version", "delete-version-bypass", "put-lifecycle", "put-bucket-policy")
	want(t, r, Untested, "put-versioning", "put-object-lock", "shorten-retention")
	if r.TamperProof || !r.CanBackUp || r.ObjectLock || r.Versioning != "off" || !found(r, "versioning") || !found(r, "object-lock") {
		t.Fatalf("report %+v", r)
	}
	if !strings.Contains(r.Verdict, "versioning is off") || !strings.Contains(r.Verdict, "no Object Lock") {
		t.Errorf("verdict %q", r.Verdict)
	}

	// Root there can destroy versions outright.
	r = examine(t, srv, bucket)
	want(t, r, Allowed, "delete-version", "delete-marker")
	if r.TamperProof || !found(r, "delete-version") {
		t.Fatalf("root on a plain bucket: %+v", r)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "run escrow doctor") {
		t.Fatalf("load without a report: %v", err)
	}
	r := Local("/srv/repo", time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	if r.TamperProof || !strings.Contains(r.Verdict, "a directory has no versioning or Object Lock") {
		t.Fatalf("local verdict %q", r.Verdict)
	}
	if err := r.Save(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("saved report: %v %v", fi, err)
	}
	if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %v", di.Mode().Perm())
	}
	back, err := Load(dir)
	if err != nil || back.Verdict != r.Verdict || !back.Time.Equal(r.Time) || back.TamperProof || len(back.Findings) != 1 {
		t.Fatalf("loaded %+v %v", back, err)
	}
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged report: %v", err)
	}
}

// failDeletes answers every DELETE with 503, as an overloaded store would.
type failDeletes struct{ rt http.RoundTripper }

func (f failDeletes) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodDelete {
		return f.rt.RoundTrip(req)
	}
	body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>Please reduce your request rate.</Message></Error>`
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)), Request: req}, nil
}

// A store that fails a probe gives no verdict: a 503 is not a refusal.
func TestServerErrorIsNoVerdict(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := srv.NewLockedBucket(t, s3.Governance, 30)
	host := hostWriter(t, srv, bucket)
	tr, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(host.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(host.AccessKey, host.SecretKey, ""),
		Transport: failDeletes{tr}, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Run(context.Background(), Bucket{Client: c, Name: bucket, Prefix: prefix, Location: "test"}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "put a delete marker") || !strings.Contains(err.Error(), "reduce your request rate") {
		t.Fatalf("report %+v, error %v", r, err)
	}
}

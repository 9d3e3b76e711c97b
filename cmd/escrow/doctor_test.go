//go:build unix

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/doctor"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/s3"
)

func newBucketName(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "escrow-init-" + hex.EncodeToString(b[:])
}

func TestInitObjectLock(t *testing.T) {
	srv := testenv.MinIO(t)
	ctx := context.Background()

	// A new bucket: created locked, with the retention asked for.
	bucket := newBucketName(t)
	c := newCLI(t, srv.URL(bucket, "site1"), srv.Env()...)
	r := c.run(nil, "init", "--object-lock", "--retention", "7d", "--mode", "governance")
	if r.code != 0 || strings.Contains(r.stderr, "not tamper-proof") || !strings.Contains(r.stdout, "kept 7 days in governance mode") {
		t.Fatalf("init --object-lock: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	client := srv.Client(t)
	on, ret, err := s3.ReadObjectLock(ctx, client, bucket)
	if err != nil || !on || *ret != (s3.Retention{Mode: s3.Governance, Days: 7}) {
		t.Fatalf("lock config read back: %v %+v %v", on, ret, err)
	}
	if v, err := client.GetBucketVersioning(ctx, bucket); err != nil || !v.Enabled() {
		t.Fatalf("versioning: %+v %v", v, err)
	}
	// Never a second repository on top of the first.
	if r := c.run(nil, "init", "--object-lock", "--retention", "7d", "--mode", "governance"); r.code != exitUsage || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("init again: exit %d %s", r.code, r.stderr)
	}
	// Another prefix in the locked bucket, asking for another retention:
	// refused rather than changing what is there.
	c2 := newCLI(t, srv.URL(bucket, "site2"), srv.Env()...)
	if r := c2.run(nil, "init", "--object-lock", "--retention", "1y"); r.code != exitUsage || !strings.Contains(r.stderr, "already keeps new versions 7 days in governance mode") || !strings.Contains(r.stderr, "--retention 7d --mode governance") {
		t.Fatalf("init with another retention: exit %d %s", r.code, r.stderr)
	}
	c2.ok("init", "--object-lock", "--retention", "7d", "--mode", "governance")

	// An existing bucket without Object Lock cannot get it: say so, and how.
	plain := srv.NewBucket(t)
	c3 := newCLI(t, srv.URL(plain, "site1"), srv.Env()...)
	r = c3.run(nil, "init", "--object-lock")
	if r.code != exitUsage || !strings.Contains(r.stderr, "exists without versioning and Object Lock") || !strings.Contains(r.stderr, "only when a bucket is created") || !strings.Contains(r.stderr, "Nothing was changed") {
		t.Fatalf("init --object-lock on a plain bucket: exit %d %s", r.code, r.stderr)
	}
	if n := countObjects(t, srv, plain); n != 0 {
		t.Fatalf("%d objects written to the plain bucket", n)
	}
	// Without the flag it works, and warns once.
	r = c3.run(nil, "init")
	if r.code != 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "not tamper-proof") || !strings.Contains(r.stderr, "--object-lock") || !strings.Contains(r.stderr, "escrow doctor") {
		t.Fatalf("init on a plain bucket: exit %d %q", r.code, r.stderr)
	}
	// A bucket the owner locked beforehand needs no warning.
	locked := srv.NewLockedBucket(t, s3.Compliance, 1)
	if r := newCLI(t, srv.URL(locked, ""), srv.Env()...).run(nil, "init"); r.code != 0 || r.stderr != "" {
		t.Fatalf("init on a locked bucket: exit %d %q", r.code, r.stderr)
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"init", "--object-lock", "--retention", "30"}, "give days or years"},
		{[]string{"init", "--object-lock", "--mode", "strict"}, "use compliance or governance"},
		{[]string{"init", "--retention", "30d"}, "go with --object-lock"},
	} {
		if r := c3.run(nil, tc.args...); r.code != exitUsage || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: exit %d %s", tc.args, r.code, r.stderr)
		}
	}
	local := newCLI(t, filepath.Join(t.TempDir(), "repo"))
	if r := local.run(nil, "init", "--object-lock"); r.code != exitUsage || !strings.Contains(r.stderr, "is for S3 repositories") {
		t.Errorf("--object-lock on a directory: exit %d %s", r.code, r.stderr)
	}
}

func countObjects(t *testing.T, srv testenv.Server, bucket string) int {
	n := 0
	for o := range srv.Client(t).ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	return n
}

// The owner creates the locked repository and the host's credential from
// escrow doctor --policy; the host backs up with it, and doctor proves the
// escrow tamper-proof from the host and not from the owner's root.
func TestDoctorHostWriter(t *testing.T) {
	srv := testenv.MinIO(t)
	bucket := newBucketName(t)
	owner := newCLI(t, srv.URL(bucket, "site1"), srv.Env()...)
	owner.ok("init", "--object-lock", "--retention", "30d")

	pol := owner.ok("doctor", "--policy")
	var doc struct {
		Statement []struct{ Action, Resource []string }
	}
	if err := json.Unmarshal([]byte(pol), &doc); err != nil || len(doc.Statement) != 3 {
		t.Fatalf("--policy output: %v\n%s", err, pol)
	}
	want, err := doctor.Policy(bucket, "site1", doctor.HostWriter, doctor.MinIO)
	if err != nil || strings.TrimSpace(pol) != string(want) {
		t.Fatalf("--policy is not doctor.Policy: %v\n%s", err, pol)
	}
	if aws := owner.ok("doctor", "--policy", "--format", "aws"); !json.Valid([]byte(aws)) || !strings.Contains(aws, "StringLikeIfExists") {
		t.Fatalf("--policy --format aws:\n%s", aws)
	}
	host := srv.NewUser(t, "host", []byte(pol))
	hc := newCLI(t, srv.URL(bucket, "site1"), host.Env()...)

	// Backing up needs only put, get and list.
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 5, 1)
	r := hc.run(nil, "backup", src)
	t.Logf("host backup: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	if r.code != 0 {
		t.Fatalf("backup with the host's credentials: exit %d %s", r.code, r.stderr)
	}
	if n := len(hc.snapshots()); n != 1 {
		t.Fatalf("%d snapshots", n)
	}
	target := t.TempDir()
	hc.ok("restore", "latest", "--target", target, "--verify")
	sameTree(t, digest(t, src), digest(t, filepath.Join(target, src)))

	stateDir := filepath.Join(t.TempDir(), "state")
	r = hc.run(nil, "doctor", "--state-dir", stateDir)
	t.Logf("doctor as the host:\n%s", r.stdout)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "tamper-proof: versions kept 30 days in compliance mode; this host cannot delete or shorten them\n") || r.stderr != "" {
		t.Fatalf("doctor as the host: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	saved, err := doctor.Load(stateDir)
	if err != nil || !saved.TamperProof || saved.Repository != srv.URL(bucket, "site1") {
		t.Fatalf("saved verdict: %+v %v", saved, err)
	}
	// The agent's configuration names the repository, the host's
	// credential and the state directory the verdict goes to.
	dir := t.TempDir()
	secret, cfg := filepath.Join(dir, "s3.secret"), filepath.Join(dir, "escrow.yaml")
	if err := os.WriteFile(secret, []byte(host.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agentState := filepath.Join(dir, "state")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "repository: %s\npassword_file: %s\ns3:\n  access_key_id: %s\n  secret_access_key_file: %s\nsources:\n  - path: %s\nstate_dir: %s\n",
		srv.URL(bucket, "site1"), strings.TrimPrefix(hc.env[3], "ESCROW_PASSWORD_FILE="), host.AccessKey, secret, src, agentState), 0o600); err != nil {
		t.Fatal(err)
	}
	freshCLI(t).ok("doctor", "--config", cfg)
	if saved, err := doctor.Load(agentState); err != nil || !saved.TamperProof {
		t.Fatalf("verdict saved for the agent: %+v %v", saved, err)
	}

	var rep doctor.Report
	out := hc.ok("doctor", "--json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.TamperProof || !rep.CanBackUp || rep.Retention.Days != 30 || len(rep.Checks) != 12 {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}

	// The owner's root can change the bucket's settings: not tamper-proof
	// against it, exit 5, each finding with its fix.
	r = owner.run(nil, "doctor")
	t.Logf("doctor as root:\n%s", r.stdout)
	if r.code != exitNotTamperProof || !strings.HasPrefix(r.stdout, "NOT tamper-proof: ") || !strings.Contains(r.stdout, "can change the bucket policy") ||
		!strings.Contains(r.stdout, "fix: remove s3:PutBucketPolicy") || !strings.Contains(r.stderr, "escrow: NOT tamper-proof") {
		t.Fatalf("doctor as root: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	// The canaries stay outside restic's folders: escrow and restic both
	// still check the repository. (--no-lock: until locking needs no
	// deletes, the host's backup leaves its lock file behind.)
	owner.ok("check", "--read-data")
	restic := testenv.RequireBinary(t, "restic")
	cmd := exec.Command(restic, "--no-cache", "--no-lock", "check", "--read-data")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "RESTIC_REPOSITORY=" + srv.URL(bucket, "site1"),
		"RESTIC_PASSWORD_FILE=" + strings.TrimPrefix(owner.env[3], "ESCROW_PASSWORD_FILE=")}, srv.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restic check: %v\n%s", err, out)
	}
}

func TestDoctorUnprotected(t *testing.T) {
	srv := testenv.MinIO(t)
	c := newCLI(t, srv.URL(srv.NewBucket(t), "site1"), srv.Env()...)
	c.ok("init")
	r := c.run(nil, "doctor", "--json")
	var rep doctor.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != exitNotTamperProof || rep.TamperProof || rep.Versioning != "off" || rep.ObjectLock {
		t.Fatalf("doctor on a plain bucket: exit %d %v\n%s", r.code, err, r.stdout)
	}
	if !strings.Contains(rep.Verdict, "no Object Lock") || !strings.Contains(rep.Verdict, "can delete stored versions") {
		t.Errorf("verdict: %s", rep.Verdict)
	}

	local := newCLI(t, filepath.Join(t.TempDir(), "repo"))
	local.ok("init")
	r = local.run(nil, "doctor")
	if r.code != exitNotTamperProof || !strings.Contains(r.stdout, "a directory has no versioning or Object Lock") || !strings.Contains(r.stdout, "fix: back up to S3 storage created with escrow init --object-lock") {
		t.Fatalf("doctor on a directory: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if r := local.run(nil, "doctor", "--policy"); r.code != exitUsage || !strings.Contains(r.stderr, "access policies are for S3 buckets") {
		t.Errorf("--policy for a directory: exit %d %s", r.code, r.stderr)
	}
	if r := local.run(nil, "doctor", "--format", "aws"); r.code != exitUsage || !strings.Contains(r.stderr, "go with --policy") {
		t.Errorf("--format without --policy: exit %d %s", r.code, r.stderr)
	}
	gone := newCLI(t, filepath.Join(t.TempDir(), "nothing"))
	if r := gone.run(nil, "doctor"); r.code != exitNoRepository {
		t.Errorf("doctor without a repository: exit %d %s", r.code, r.stderr)
	}
	// A store that does not answer is an error, not a verdict.
	down := newCLI(t, "s3:http://127.0.0.1:1/bucket", "AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=b")
	if r := down.run(nil, "doctor"); r.code != exitFailure || bytes.Contains([]byte(r.stdout), []byte("tamper-proof")) {
		t.Errorf("doctor with the store down: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

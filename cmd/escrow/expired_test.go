//go:build unix

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/doctor"
	"github.com/escrow-backup/escrow/internal/testenv"
)

// Temporary credentials (a session token from the store's STS, as a
// reseller's provisioning might hand out) that run out while a host backs
// up with them: while they are valid the host backs up; once the store's
// own clock says they have expired, every command stops with a message
// that says so and names the variable to renew, without the secret, and
// what was stored stays whole. MinIO grants temporary credentials for 15
// minutes at least, so only the long tier waits for them to expire.
func TestBadInputExpiredCredentials(t *testing.T) {
	t.Parallel()
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	owner := newCLI(t, srv.URL(bucket, "site"), srv.Env()...)
	b := newBaseline(t, owner)
	pol, err := doctor.Policy(bucket, "site", doctor.HostWriter, doctor.MinIO)
	if err != nil {
		t.Fatal(err)
	}
	host, expiry := srv.NewTemporaryUser(t, "temporary", pol, 15*time.Minute)
	hc := newCLI(t, srv.URL(bucket, "site"), host.Env()...)
	hc.ok("backup", b.src)
	if !testenv.Long() {
		t.Log("temporary credentials back up; waiting 15 minutes for them to expire is for the long tier (ESCROW_TIER=long)")
		return
	}
	wait := time.Until(expiry) + 5*time.Second
	t.Logf("waiting %s for the temporary credentials to expire", wait.Round(time.Second))
	time.Sleep(wait)

	for _, args := range [][]string{{"--retry-for", "2s", "snapshots"}, {"--retry-for", "2s", "backup", b.src}} {
		r := expect(t, hc, nil, exitFailure, []string{host.AccessKey, "expired", "AWS_SESSION_TOKEN"}, args...)
		if strings.Contains(r.stdout+r.stderr, host.SecretKey) || strings.Contains(r.stdout+r.stderr, host.SessionToken) {
			t.Fatalf("secret in the output: %s", r.stderr)
		}
	}
	if n := len(owner.snapshots()); n != 2 {
		t.Fatalf("%d snapshots, want the baseline's and the one taken before expiry", n)
	}
	b.intact(t, nil)
	target := t.TempDir()
	owner.ok("restore", "latest", "--target", target)
	sameTree(t, b.want, digest(t, filepath.Join(target, b.src)))
}

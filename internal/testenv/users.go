package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// NewUser creates a user on s (a MinIO server) through MinIO's admin API,
// with policyJSON as its only policy, and returns s with that user's
// credentials: tests run escrow as a host that may do exactly what the
// policy allows. The name gets a random suffix, so tests sharing a server
// never collide; on an external server the user and its policy are removed
// when the test ends.
func (s Server) NewUser(t testing.TB, name string, policyJSON []byte) Server {
	t.Helper()
	adm, err := madmin.NewWithOptions(s.Endpoint, &madmin.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: s.Secure})
	if err != nil {
		t.Fatalf("MinIO admin client for %s: %v", s.Endpoint, err)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	user := s
	user.AccessKey = name + "-" + hex.EncodeToString(b[:4])
	user.SecretKey = hex.EncodeToString(b[4:])
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adm.AddCannedPolicy(ctx, user.AccessKey, policyJSON); err != nil {
		t.Fatalf("create MinIO policy %s on %s: %v\npolicy: %s", user.AccessKey, s.Endpoint, err, policyJSON)
	}
	if err := adm.AddUser(ctx, user.AccessKey, user.SecretKey); err != nil {
		t.Fatalf("create MinIO user %s on %s: %v", user.AccessKey, s.Endpoint, err)
	}
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{user.AccessKey}, User: user.AccessKey}); err != nil {
		t.Fatalf("attach policy to MinIO user %s on %s: %v", user.AccessKey, s.Endpoint, err)
	}
	if s.External {
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := adm.RemoveUser(ctx, user.AccessKey); err != nil {
				t.Logf("remove test user %s: %v", user.AccessKey, err)
			}
			if err := adm.RemoveCannedPolicy(ctx, user.AccessKey); err != nil {
				t.Logf("remove test policy %s: %v", user.AccessKey, err)
			}
		})
	}
	return user
}

// NewLockedBucket creates a bucket with Object Lock, which turns versioning
// on, and a default retention of days days in mode ("COMPLIANCE" or
// "GOVERNANCE"); days 0 leaves it without a default retention. Versions in
// it cannot be removed before their retention ends, so on an external
// server the bucket outlives the test: use governance mode there, whose
// versions the cleanup removes with root's bypass.
func (s Server) NewLockedBucket(t testing.TB, mode string, days uint) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "escrow-lock-" + hex.EncodeToString(b[:])
	c := s.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatalf("create bucket %s with Object Lock on %s: %v", name, s.Endpoint, err)
	}
	if days > 0 {
		m, unit := minio.RetentionMode(mode), minio.Days
		if err := c.SetObjectLockConfig(ctx, name, &m, &days, &unit); err != nil {
			t.Fatalf("set default retention %d days %s on bucket %s: %v", days, mode, name, err)
		}
	}
	if s.External {
		t.Cleanup(func() { removeLockedBucket(t, c, name) })
	}
	return name
}

func removeLockedBucket(t testing.TB, c *minio.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	objects := c.ListObjects(ctx, name, minio.ListObjectsOptions{Recursive: true, WithVersions: true})
	for r := range c.RemoveObjects(ctx, name, objects, minio.RemoveObjectsOptions{GovernanceBypass: true}) {
		t.Logf("remove test bucket %s: %s: %v", name, r.ObjectName, r.Err)
	}
	if err := c.RemoveBucket(ctx, name); err != nil {
		t.Logf("remove test bucket %s (versions under compliance retention stay until it ends): %v", name, err)
	}
}

// NewTemporaryUser is NewUser's credentials traded through MinIO's STS
// (AssumeRole) for temporary ones, a session token included, that the
// server stops accepting after valid. MinIO grants no less than 15
// minutes, so a test that waits for them to run out is a long one.
func (s Server) NewTemporaryUser(t testing.TB, name string, policyJSON []byte, valid time.Duration) (Server, time.Time) {
	t.Helper()
	parent := s.NewUser(t, name, policyJSON)
	scheme := "http://"
	if s.Secure {
		scheme = "https://"
	}
	start := time.Now()
	sts, err := credentials.NewSTSAssumeRole(scheme+s.Endpoint, credentials.STSAssumeRoleOptions{
		AccessKey: parent.AccessKey, SecretKey: parent.SecretKey, DurationSeconds: int(valid / time.Second),
	})
	if err != nil {
		t.Fatalf("MinIO STS at %s: %v", s.Endpoint, err)
	}
	v, err := sts.GetWithContext(&credentials.CredContext{Client: http.DefaultClient})
	if err != nil {
		t.Fatalf("temporary credentials for %s from %s: %v", parent.AccessKey, s.Endpoint, err)
	}
	tmp := parent
	tmp.AccessKey, tmp.SecretKey, tmp.SessionToken = v.AccessKeyID, v.SecretAccessKey, v.SessionToken
	return tmp, start.Add(valid)
}

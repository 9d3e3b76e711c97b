package testenv

import (
	"bytes"
	"context"
	"testing"

	"github.com/minio/minio-go/v7"
)

// A user may do what its policy allows and nothing else; a locked bucket
// keeps versions against root itself.
func TestNewUserAndLockedBucket(t *testing.T) {
	srv := MinIO(t)
	ctx := context.Background()
	bucket := srv.NewLockedBucket(t, "COMPLIANCE", 1)
	root := srv.Client(t)
	if v, err := root.GetBucketVersioning(ctx, bucket); err != nil || !v.Enabled() {
		t.Fatalf("versioning: %+v %v", v, err)
	}
	if on, mode, days, _, err := root.GetObjectLockConfig(ctx, bucket); err != nil || on != "Enabled" || *mode != minio.Compliance || *days != 1 {
		t.Fatalf("object lock: %s %v %v %v", on, mode, days, err)
	}

	policy := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":["arn:aws:s3:::` + bucket + `/*"]}]}`)
	user := srv.NewUser(t, "writer", policy)
	if user.AccessKey == srv.AccessKey || user.Endpoint != srv.Endpoint {
		t.Fatalf("user %+v", user)
	}
	c := user.Client(t)
	info, err := c.PutObject(ctx, bucket, "x", bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{SendContentMd5: true})
	if err != nil {
		t.Fatalf("put as the user: %v", err)
	}
	if err := c.RemoveObject(ctx, bucket, "x", minio.RemoveObjectOptions{}); minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Fatalf("delete as the user: %v, want access denied", err)
	}
	if err := root.RemoveObject(ctx, bucket, "x", minio.RemoveObjectOptions{VersionID: info.VersionID, GovernanceBypass: true}); err == nil {
		t.Fatal("root deleted a version under compliance retention")
	}
	if other := srv.NewUser(t, "writer", policy); other.AccessKey == user.AccessKey {
		t.Fatal("two users with one name")
	}
}

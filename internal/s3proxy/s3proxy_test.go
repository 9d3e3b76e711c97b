package s3proxy_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

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

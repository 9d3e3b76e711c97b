package s3

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/remote"
)

func TestClassify(t *testing.T) {
	b := &Backend{cfg: Config{Endpoint: "s3.example.com", UseHTTPS: true, Bucket: "bkt", Prefix: "pre",
		KeyID: "AKIDEXAMPLE", Secret: "wJalrXUtnFEMI/K7MDENG", SessionToken: "SESSIONTOKEN"}}
	resp := func(status int, code string) error {
		return minio.ErrorResponse{StatusCode: status, Code: code, Message: "server says " + code}
	}
	const (
		notFound  = "not found"
		permanent = "permanent"
		retriable = "retriable"
		cancelled = "cancelled"
	)
	tests := []struct {
		name  string
		op    string
		err   error
		class string
		want  string // substring of the message
	}{
		{"NoSuchKey", "load", resp(404, "NoSuchKey"), notFound, "load data/abcdef01: not found"},
		{"NotFound on stat", "stat", resp(404, "NotFound"), notFound, "not found"},
		{"bare 404 on remove", "remove", resp(404, "404 Not Found"), notFound, "not found"},
		{"NoSuchKey on list is no empty listing", "list", resp(404, "NoSuchKey"), retriable, "NoSuchKey"},
		{"AccessDenied on save", "save", resp(403, "AccessDenied"), permanent, "grant s3:PutObject on bkt/pre/*"},
		{"AccessDenied on list", "list", resp(403, "AccessDenied"), permanent, "grant s3:ListBucket on bucket bkt"},
		{"bare 403", "load", resp(403, "403 Forbidden"), permanent, `access key ID "AKIDEXAMPLE"`},
		{"InvalidAccessKeyId with a session token", "load", resp(403, "InvalidAccessKeyId"), permanent, "temporary credentials (AWS_SESSION_TOKEN is set) that have expired"},
		{"SignatureDoesNotMatch", "load", resp(403, "SignatureDoesNotMatch"), permanent, "check AWS_SECRET_ACCESS_KEY"},
		{"NoSuchBucket", "load", resp(404, "NoSuchBucket"), permanent, `bucket "bkt" does not exist`},
		{"InvalidBucketName", "open", resp(400, "InvalidBucketName"), permanent, `invalid bucket name "bkt"`},
		{"AllAccessDisabled", "load", resp(403, "AllAccessDisabled"), permanent, "disabled"},
		{"ExpiredToken", "load", resp(400, "ExpiredToken"), permanent, "AWS_SESSION_TOKEN"},
		{"InvalidRange", "load", resp(416, "InvalidRange"), permanent, "beyond the end"},
		{"InternalError", "save", resp(500, "InternalError"), retriable, "HTTP 500"},
		{"SlowDown", "save", resp(503, "SlowDown"), retriable, "HTTP 503"},
		{"BadDigest", "save", resp(400, "BadDigest"), retriable, "BadDigest"},
		{"connection reset", "load", &url.Error{Op: "Get", URL: "https://s3.example.com/bkt/pre/x", Err: errors.New("read: connection reset by peer")}, retriable, "connection reset"},
		{"query stripped", "load",
			&url.Error{Op: "Get", URL: "https://s3.example.com/bkt/x?X-Amz-Signature=abc123&X-Amz-Security-Token=SESSIONTOKEN", Err: errors.New("EOF")},
			retriable, "https://s3.example.com/bkt/x"},
		{"transport timeout", "load", &url.Error{Op: "Get", URL: "https://s3.example.com/x", Err: context.DeadlineExceeded}, retriable, "timeout"},
		{"plain HTTP", "open", &url.Error{Op: "Head", URL: "https://s3.example.com/bkt/", Err: errors.New("http: server gave HTTP response to HTTPS client")}, permanent, "s3:http://s3.example.com"},
		{"secret in message", "load", errors.New("weird wJalrXUtnFEMI/K7MDENG"), retriable, "weird REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.classify(context.Background(), tt.op, "data/abcdef01", tt.err)
			var got string
			switch {
			case remote.IsNotFound(err):
				got = notFound
			case errors.Is(err, remote.ErrPermanent):
				got = permanent
			case remote.IsPermanent(err):
				got = "other permanent"
			default:
				got = retriable
			}
			if got != tt.class {
				t.Errorf("%v classified %s, want %s", err, got, tt.class)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Errorf("%q does not contain %q", msg, tt.want)
			}
			for _, secret := range []string{"wJalrXUtnFEMI", "SESSIONTOKEN", "X-Amz-Signature"} {
				if strings.Contains(msg, secret) {
					t.Errorf("%q leaks %s", msg, secret)
				}
			}
		})
	}
}

// Without a session token, an unknown access key is a wrong one.
func TestClassifyUnknownKey(t *testing.T) {
	b := &Backend{cfg: Config{Endpoint: "s3.example.com", Bucket: "bkt", KeyID: "AKIDEXAMPLE", Secret: "wJalrXUtnFEMI/K7MDENG"}}
	err := b.classify(context.Background(), "load", "data/abcdef01", minio.ErrorResponse{StatusCode: 403, Code: "InvalidAccessKeyId"})
	if !errors.Is(err, remote.ErrPermanent) || !strings.Contains(err.Error(), `access key ID "AKIDEXAMPLE" (check AWS_ACCESS_KEY_ID)`) || strings.Contains(err.Error(), "expired") {
		t.Errorf("got %v, want a permanent error asking to check AWS_ACCESS_KEY_ID", err)
	}
}

func TestClassifyCallerContext(t *testing.T) {
	b := &Backend{cfg: Config{Bucket: "bkt"}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.classify(ctx, "save", "data/x", &url.Error{Op: "Put", URL: "http://h/bkt/x", Err: context.Canceled})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if b.classify(context.Background(), "save", "x", nil) != nil {
		t.Error("nil error classified as an error")
	}
}

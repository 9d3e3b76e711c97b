package s3

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/remote"
)

// Error classification. Every error a Backend returns went through classify:
//
//   - the caller's context ended: wraps ctx.Err() (remote.IsPermanent is true);
//   - the object is missing (NoSuchKey, NotFound, HTTP 404 on an object):
//     wraps remote.ErrNotFound;
//   - the server refused in a way only a person can fix (credentials, access
//     policy, missing bucket, bad bucket name, clock skew, untrusted TLS
//     certificate, a request the server will never accept): wraps
//     remote.ErrPermanent and says what to fix;
//   - everything else — 5xx, throttling, timeouts, refused or reset
//     connections, DNS failures — stays retriable.
//
// Messages name the bucket, prefix and access key ID, never the secret key;
// URLs inside transport errors lose their query so no signature or token
// can leak through them.

// Error is an S3 failure after classification.
type Error struct {
	msg   string
	kind  error // remote.ErrNotFound, remote.ErrPermanent or nil (retriable)
	cause error
}

func (e *Error) Error() string { return e.msg }

// Is makes errors.Is(err, remote.ErrNotFound/ErrPermanent) follow the class.
func (e *Error) Is(target error) bool { return e.kind != nil && target == e.kind }

// Unwrap returns the sanitized underlying error (often a minio.ErrorResponse).
func (e *Error) Unwrap() error { return e.cause }

// classify turns an error from minio-go into an *Error (or a context error)
// for operation op ("save", "load", "stat", "list", "remove", "open") on
// object what.
func (b *Backend) classify(ctx context.Context, op, what string, err error) error {
	if err == nil {
		return nil
	}
	prefix := op
	if what != "" {
		prefix += " " + what
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", prefix, cerr)
	}
	err = sanitize(err)
	mk := func(kind error, format string, args ...any) error {
		return &Error{msg: b.scrub(prefix + ": " + fmt.Sprintf(format, args...)), kind: kind, cause: err}
	}

	var er minio.ErrorResponse
	if errors.As(err, &er) {
		return b.classifyResponse(op, er, mk)
	}

	var ue *url.Error
	if errors.As(err, &ue) {
		var unknownCA x509.UnknownAuthorityError
		var hostErr x509.HostnameError
		var certErr x509.CertificateInvalidError
		switch {
		case errors.As(ue.Err, &unknownCA), errors.As(ue.Err, &hostErr), errors.As(ue.Err, &certErr):
			return mk(remote.ErrPermanent, "TLS certificate of %s not trusted: %v (install a certificate valid for that name, or add its CA to the system trust store or SSL_CERT_FILE)",
				b.cfg.Endpoint, ue.Err)
		case strings.Contains(ue.Err.Error(), "server gave HTTP response to HTTPS client"):
			return mk(remote.ErrPermanent, "%s does not speak HTTPS (use s3:http://%s/... if it is meant to be plain HTTP)",
				b.cfg.Endpoint, b.cfg.Endpoint)
		}
	}
	// A deadline that is not the caller's is a transport timeout: retriable,
	// so the context error must not be wrapped (IsPermanent would match it).
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &Error{msg: b.scrub(prefix + ": timeout: " + err.Error())}
	}
	return mk(nil, "%v", err)
}

func (b *Backend) classifyResponse(op string, er minio.ErrorResponse, mk func(error, string, ...any) error) error {
	key := b.cfg.KeyID
	// Only a request for one object can find it missing; a listing or a
	// bucket check answered "not found" is a confused server, not an
	// empty result.
	objectOp := op == "save" || op == "load" || op == "stat" || op == "remove"
	switch er.Code {
	case minio.NoSuchKey, "NotFound":
		if objectOp {
			return mk(remote.ErrNotFound, "not found in %s", b.cfg.Location())
		}
	case minio.NoSuchBucket:
		return mk(remote.ErrPermanent, "bucket %q does not exist at %s (create it, e.g. with `escrow init`, or check the address)",
			b.cfg.Bucket, b.cfg.Endpoint)
	case minio.AccessDenied:
		return mk(remote.ErrPermanent, "access denied to bucket %q for access key ID %q (grant %s, or check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
			b.cfg.Bucket, key, b.permissionFor(op))
	case minio.InvalidAccessKeyID:
		if b.cfg.SessionToken != "" {
			// Temporary credentials: some servers (MinIO) answer this,
			// not ExpiredToken, once they have run out.
			return mk(remote.ErrPermanent, "the server does not know access key ID %q: temporary credentials (AWS_SESSION_TOKEN is set) that have expired are answered so; get new ones (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)", key)
		}
		return mk(remote.ErrPermanent, "the server does not know access key ID %q (check AWS_ACCESS_KEY_ID)", key)
	case minio.SignatureDoesNotMatch:
		return mk(remote.ErrPermanent, "the secret key does not match access key ID %q (check AWS_SECRET_ACCESS_KEY)", key)
	case minio.InvalidBucketName:
		return mk(remote.ErrPermanent, "invalid bucket name %q (check the address %s)", b.cfg.Bucket, b.cfg.Location())
	case minio.AllAccessDisabled:
		return mk(remote.ErrPermanent, "all access to bucket %q is disabled (the account or bucket owner must re-enable it)", b.cfg.Bucket)
	case "ExpiredToken", "InvalidToken", "InvalidTokenId", "TokenRefreshRequired":
		return mk(remote.ErrPermanent, "the session token for access key ID %q is expired or invalid (get new temporary credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN)", key)
	case minio.RequestTimeTooSkewed:
		off := b.clock.describe()
		if off == "" {
			off = "this computer's clock differs too much from the server's"
		}
		return mk(remote.ErrPermanent, "%s, and the server refuses requests signed at a time that far off: fix the clock (enable NTP, e.g. `timedatectl set-ntp true`, or run chronyd or ntpd)", off)
	case minio.InvalidRange:
		return mk(remote.ErrPermanent, "requested range is beyond the end of the object")
	case minio.InvalidArgument, minio.EntityTooLarge, minio.MethodNotAllowed, minio.NotImplemented, "XMinioInvalidObjectName":
		return mk(remote.ErrPermanent, "the server rejected the request: %s (%s)", er.Code, er.Message)
	}
	if er.StatusCode == http.StatusNotFound && objectOp {
		return mk(remote.ErrNotFound, "not found in %s (HTTP 404 %s)", b.cfg.Location(), er.Code)
	}
	if er.StatusCode == http.StatusForbidden {
		return mk(remote.ErrPermanent, "access denied to bucket %q for access key ID %q: %s (grant %s, or check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
			b.cfg.Bucket, key, er.Code, b.permissionFor(op))
	}
	if er.StatusCode != 0 {
		return mk(nil, "%s (HTTP %d %s)", er.Message, er.StatusCode, er.Code)
	}
	return mk(nil, "%s (%s)", er.Message, er.Code)
}

// scrub is the last line of defence: no code path is known to put the
// secret into a message, but none may. Strings shorter than any real
// credential are left alone: replacing every "b" would garble the message
// and protect nothing.
func (b *Backend) scrub(msg string) string {
	for _, s := range []string{b.cfg.Secret, b.cfg.SessionToken} {
		if len(s) >= 8 {
			msg = strings.ReplaceAll(msg, s, "REDACTED")
		}
	}
	return msg
}

// permissionFor names the IAM action an operation needs and the resource it
// needs it on.
func (b *Backend) permissionFor(op string) string {
	objects := b.cfg.Bucket + "/*"
	if b.cfg.Prefix != "" {
		objects = b.cfg.Bucket + "/" + b.cfg.Prefix + "/*"
	}
	bucket := "bucket " + b.cfg.Bucket
	switch op {
	case "save":
		return "s3:PutObject on " + objects
	case "load", "stat":
		return "s3:GetObject on " + objects
	case "remove":
		return "s3:DeleteObject on " + objects
	case "list", "open":
		return "s3:ListBucket on " + bucket
	case "create":
		return "s3:CreateBucket and s3:ListBucket on " + bucket
	}
	return "s3:GetObject, s3:PutObject and s3:DeleteObject on " + objects + " and s3:ListBucket on " + bucket
}

// sanitize strips query strings from URLs in transport errors: a presigned
// or token-bearing query must never reach a log.
func sanitize(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	if perr != nil {
		return &url.Error{Op: ue.Op, URL: "(unparseable URL)", Err: ue.Err}
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return &url.Error{Op: ue.Op, URL: u.String(), Err: ue.Err}
}

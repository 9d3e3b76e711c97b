// Package s3 stores a repository in an S3 bucket (AWS or any compatible
// server such as MinIO), under an optional prefix, in restic's default
// layout: PREFIX/config, PREFIX/data/XX/ID, PREFIX/keys/ID, ...
//
// Retries: minio-go retries failed requests up to ten times by itself,
// invisibly. Each client here is built with Options.MaxRetries = 1 (a
// per-client setting, not the minio.MaxRetry package variable), so every
// request is tried once and retrying is left to remote.WithRetry, which logs
// each retry and keeps one time budget for the whole operation.
package s3

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/escrow-backup/escrow/internal/failpoint"
	"github.com/escrow-backup/escrow/remote"
)

// Backend is a repository in a bucket.
type Backend struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
	// transport is the one Open built, closed with the Backend; nil when
	// the caller supplied its own.
	transport *http.Transport
	// lock is the Object Lock retention Create sets up; nil: none asked.
	lock *Retention
	// clock notes how far our clock is from the server's when a request
	// is refused, for the clock skew error.
	clock *clockWatch
}

var _ remote.Backend = (*Backend)(nil)

// Option changes how Open and Create connect.
type Option func(*options)

type options struct {
	transport http.RoundTripper
	rootCAs   *x509.CertPool
	limiter   *remote.Limiter
	lock      *Retention
	// clockOffset moves the clock requests are signed with (tests only).
	clockOffset time.Duration
}

// WithTransport replaces the HTTP transport, e.g. to inject faults in tests.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) { o.transport = rt }
}

// WithRootCAs trusts the given CAs instead of the system's, for a server
// with a private CA. Certificates are always verified.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(o *options) { o.rootCAs = pool }
}

// WithUploadLimit paces uploads through l (nil: no limit).
func WithUploadLimit(l *remote.Limiter) Option {
	return func(o *options) { o.limiter = l }
}

// Open connects to the bucket named by cfg and checks that it exists. It
// does not look for a repository under the prefix; loading the config does.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Backend, error) {
	b, err := connect(cfg, opts)
	if err != nil {
		return nil, err
	}
	ok, err := b.client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		b.Close()
		return nil, b.classify(ctx, "open", cfg.Location(), err)
	}
	if !ok {
		b.Close()
		return nil, b.classify(ctx, "open", cfg.Location(),
			minio.ErrorResponse{Code: minio.NoSuchBucket, StatusCode: http.StatusNotFound, BucketName: cfg.Bucket})
	}
	return b, nil
}

// Create connects, creates the bucket if it is missing, and refuses with an
// error matching remote.ErrExists if a repository config already exists
// under the prefix.
func Create(ctx context.Context, cfg Config, opts ...Option) (*Backend, error) {
	b, err := connect(cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := b.create(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backend) create(ctx context.Context) error {
	loc := b.cfg.Location()
	ok, err := b.client.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		return b.classify(ctx, "create", loc, err)
	}
	switch {
	case !ok && b.lock != nil:
		if err := b.makeLockedBucket(ctx); err != nil {
			return err
		}
	case !ok:
		err := b.client.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.cfg.Region})
		// Another process may have created it since BucketExists.
		if err != nil && minio.ToErrorResponse(err).Code != minio.BucketAlreadyOwnedByYou {
			return b.classify(ctx, "create", loc, err)
		}
	}
	var have *Retention
	if b.lock != nil {
		if have, err = b.checkLocked(ctx); err != nil {
			return err
		}
	}
	_, err = b.Stat(ctx, remote.Handle{Type: remote.ConfigFile})
	switch {
	case err == nil:
		return fmt.Errorf("create repository at %s: %w (nothing was changed)", loc, remote.ErrExists)
	case !remote.IsNotFound(err):
		return fmt.Errorf("create %s: %w", loc, err)
	}
	if b.lock != nil {
		return b.setRetention(ctx, have)
	}
	return nil
}

func connect(cfg Config, opts []Option) (*Backend, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case cfg.Endpoint == "" || cfg.Bucket == "":
		return nil, fmt.Errorf("open %s: %w: endpoint and bucket are required", cfg.Location(), remote.ErrPermanent)
	case cfg.KeyID == "" || cfg.Secret == "":
		return nil, fmt.Errorf("open %s: %w: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
			cfg.Location(), remote.ErrPermanent)
	}
	b := &Backend{cfg: cfg, lock: o.lock}
	rt := o.transport
	if rt == nil {
		b.transport = newTransport(cfg.UseHTTPS, o.rootCAs)
		rt = b.transport
	}
	if o.clockOffset != 0 {
		rt = &resigner{rt: rt, offset: o.clockOffset, keyID: cfg.KeyID, secret: cfg.Secret, region: cfg.Region}
	}
	b.clock = &clockWatch{rt: rt, offset: o.clockOffset}
	rt = o.limiter.RoundTripper(b.clock)
	rt = midUploadTransport(rt)
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.KeyID, cfg.Secret, cfg.SessionToken),
		Secure:     cfg.UseHTTPS,
		Transport:  rt,
		Region:     cfg.Region,
		MaxRetries: 1, // see the package comment
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w: %w", cfg.Location(), remote.ErrPermanent, err)
	}
	client.SetAppInfo("escrow", "dev")
	b.client = client
	b.core = minio.Core{Client: client}
	return b, nil
}

// newTransport is minio-go's default transport with TLS verification that
// cannot be turned off, and timeouts that turn a hung server into a
// retriable error instead of a hung backup.
func newTransport(secure bool, rootCAs *x509.CertPool) *http.Transport {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: 10 * time.Second,
		// S3 objects may carry Content-Encoding; never decode them.
		DisableCompression: true,
	}
	if secure {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: rootCAs}
	}
	return tr
}

// Location is the repository address without credentials.
func (b *Backend) Location() string { return b.cfg.Location() }

// Close releases idle connections.
func (b *Backend) Close() error {
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
	return nil
}

// key returns the object key of h, after checking that h names an object
// in the layout.
func (b *Backend) key(h remote.Handle) (string, error) {
	if err := h.Valid(); err != nil {
		return "", fmt.Errorf("%w: %w", remote.ErrPermanent, err)
	}
	if h.Type != remote.ConfigFile {
		// The same rule as the local backend, so that a repository can be
		// copied between them: no folders, no names hidden there.
		if strings.ContainsAny(h.Name, `/\`) || strings.HasPrefix(h.Name, ".") {
			return "", fmt.Errorf("%w: invalid name %q for %s object", remote.ErrPermanent, h.Name, h.Type)
		}
		if h.Type == remote.PackFile && len(h.Name) < 2 {
			return "", fmt.Errorf("%w: invalid name %q for pack file: need at least two characters for its data/XX folder", remote.ErrPermanent, h.Name)
		}
	}
	return b.join(remote.ObjectPath(h)), nil
}

func (b *Backend) join(p string) string {
	if b.cfg.Prefix == "" {
		return p
	}
	return b.cfg.Prefix + "/" + p
}

// Save uploads data in one PUT with its MD5, so the server rejects a body
// damaged in transit, and S3 makes the object visible only when complete.
func (b *Backend) Save(ctx context.Context, h remote.Handle, data []byte) error {
	key, err := b.key(h)
	if err != nil {
		return fmt.Errorf("save %s: %w", h, err)
	}
	if step := remote.MidUploadStep(h.Type); failpoint.Armed(step) {
		ctx = context.WithValue(ctx, midUploadKey{}, step)
	}
	_, err = b.client.PutObject(ctx, b.cfg.Bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{
		ContentType:    "application/octet-stream",
		SendContentMd5: true,
		// Packs are at most a few hundred MiB; a single PUT keeps one
		// attempt one request, which WithRetry can repeat as a whole.
		DisableMultipart: true,
	})
	return b.classify(ctx, "save", h.String(), err)
}

// Load returns length bytes of h from offset (0: to the end). A range past
// the end fails, and the reader fails if fewer bytes arrive than the server
// announced.
func (b *Backend) Load(ctx context.Context, h remote.Handle, offset, length int64) (io.ReadCloser, error) {
	return b.load(ctx, h, "", offset, length)
}

// load is Load of one version of h; "" reads the current one.
func (b *Backend) load(ctx context.Context, h remote.Handle, versionID string, offset, length int64) (io.ReadCloser, error) {
	key, err := b.key(h)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", h, err)
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("load %s: %w: invalid range: offset %d, length %d", h, remote.ErrPermanent, offset, length)
	}
	opts := minio.GetObjectOptions{VersionID: versionID}
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w: %w", h, remote.ErrPermanent, err)
	}
	body, info, hdr, err := b.core.GetObject(ctx, b.cfg.Bucket, key, opts)
	if err != nil {
		if ctx.Err() == nil && minio.ToErrorResponse(err).Code == minio.InvalidRange {
			return nil, fmt.Errorf("load %s: %w: range offset %d, length %d is beyond the end of the object",
				h, remote.ErrPermanent, offset, length)
		}
		return nil, b.classify(ctx, "load", h.String(), err)
	}
	want := info.Size // Content-Length of this response
	if length > 0 && want != length {
		// S3 answers a range that runs past the end with what there is.
		_ = body.Close()
		return nil, fmt.Errorf("load %s: %w: range offset %d, length %d is beyond the end of the object (size %s)",
			h, remote.ErrPermanent, offset, length, totalSize(hdr))
	}
	if want < 0 {
		want = length
	}
	return &exactReader{rc: body, left: want, h: h, b: b, ctx: ctx}, nil
}

// totalSize reads the object size from a Content-Range header.
func totalSize(hdr http.Header) string {
	cr := hdr.Get("Content-Range")
	if i := strings.LastIndex(cr, "/"); i >= 0 {
		if _, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
			return cr[i+1:]
		}
	}
	return "unknown"
}

// exactReader fails with io.ErrUnexpectedEOF if the body ends before the
// announced length, so a cut connection cannot pass for a short object.
type exactReader struct {
	rc   io.ReadCloser
	left int64 // bytes still expected; <0 when unknown
	h    remote.Handle
	b    *Backend
	ctx  context.Context
}

func (r *exactReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if r.left >= 0 {
		r.left -= int64(n)
		if r.left < 0 {
			return n, fmt.Errorf("load %s: server sent more bytes than announced", r.h)
		}
	}
	switch {
	case err == io.EOF && r.left > 0:
		return n, fmt.Errorf("load %s: body ended %d bytes early: %w", r.h, r.left, io.ErrUnexpectedEOF)
	case err != nil && err != io.EOF:
		return n, r.b.classify(r.ctx, "load", r.h.String(), err)
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }

// Stat returns the size of h.
func (b *Backend) Stat(ctx context.Context, h remote.Handle) (remote.FileInfo, error) {
	key, err := b.key(h)
	if err != nil {
		return remote.FileInfo{}, fmt.Errorf("stat %s: %w", h, err)
	}
	info, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return remote.FileInfo{}, b.classify(ctx, "stat", h.String(), err)
	}
	return remote.FileInfo{Name: h.Name, Size: info.Size}, nil
}

// Remove deletes h. S3 answers a delete of a missing key with success, so
// Remove stats first to report remote.ErrNotFound like other backends; the
// window between the two calls only matters to concurrent removers.
func (b *Backend) Remove(ctx context.Context, h remote.Handle) error {
	key, err := b.key(h)
	if err != nil {
		return fmt.Errorf("remove %s: %w", h, err)
	}
	if _, err := b.client.StatObject(ctx, b.cfg.Bucket, key, minio.StatObjectOptions{}); err != nil {
		return b.classify(ctx, "remove", h.String(), err)
	}
	err = b.client.RemoveObject(ctx, b.cfg.Bucket, key, minio.RemoveObjectOptions{})
	return b.classify(ctx, "remove", h.String(), err)
}

// List calls fn for every object of type t, paging through the listing.
// Keys that do not fit the layout (folder markers, deeper paths) are
// skipped. A listing that stops early for any reason returns an error.
func (b *Backend) List(ctx context.Context, t remote.FileType, fn func(remote.FileInfo) error) error {
	switch t {
	case remote.ConfigFile:
		fi, err := b.Stat(ctx, remote.Handle{Type: remote.ConfigFile})
		if remote.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
		return fn(fi)
	case remote.PackFile, remote.KeyFile, remote.LockFile, remote.SnapshotFile, remote.IndexFile, remote.ReleaseFile, remote.HeartbeatFile:
	default:
		return fmt.Errorf("list: %w: invalid file type %q", remote.ErrPermanent, t)
	}

	prefix := b.join(string(t)) + "/"
	// Cancelling lctx stops minio-go's pager when fn ends the listing early.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range b.client.ListObjectsIter(lctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return b.classify(ctx, "list", string(t), obj.Err)
		}
		name, ok := listedName(t, strings.TrimPrefix(obj.Key, prefix))
		if !ok {
			continue
		}
		if err := fn(remote.FileInfo{Name: name, Size: obj.Size, ModTime: obj.LastModified}); err != nil {
			return err
		}
	}
	// minio-go's pager stops silently when the context ends; that must not
	// look like the end of the listing.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list %s: %w", t, err)
	}
	return nil
}

// listedName extracts the object name from a key relative to the type's
// folder: "XX/NAME" for packs, "NAME" otherwise.
func listedName(t remote.FileType, rel string) (string, bool) {
	if t == remote.PackFile {
		dir, name, ok := strings.Cut(rel, "/")
		if !ok || len(dir) != 2 || name == "" || strings.Contains(name, "/") {
			return "", false
		}
		return name, true
	}
	if rel == "" || strings.Contains(rel, "/") {
		return "", false
	}
	return rel, true
}

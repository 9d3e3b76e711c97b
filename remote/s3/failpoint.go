package s3

import (
	"io"
	"net/http"

	"github.com/escrow-backup/escrow/internal/failpoint"
)

// midUploadKey marks the context of a Save whose object type has its
// mid-upload failpoint armed; the value is the failpoint.Step.
type midUploadKey struct{}

// midUploadTransport lets crash tests kill the process with a PUT half
// sent (see internal/failpoint). It wraps the body at the transport, below
// minio-go, which reads the caller's data once for its checksum before it
// sends anything: only here are the bytes read the bytes sent. Without an
// armed mid-upload failpoint rt is returned as it is.
func midUploadTransport(rt http.RoundTripper) http.RoundTripper {
	if !failpoint.Armed(failpoint.PackUploadMid) && !failpoint.Armed(failpoint.SnapshotUploadMid) {
		return rt
	}
	return midUpload{rt: rt}
}

type midUpload struct{ rt http.RoundTripper }

func (t midUpload) RoundTrip(req *http.Request) (*http.Response, error) {
	step, ok := req.Context().Value(midUploadKey{}).(failpoint.Step)
	if !ok || req.Method != http.MethodPut || req.Body == nil || req.Body == http.NoBody || req.ContentLength <= 0 {
		return t.rt.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.Body = readCloser{Reader: failpoint.HalfReader(step, req.Body, req.ContentLength), c: req.Body}
	return t.rt.RoundTrip(r)
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (b readCloser) Close() error { return b.c.Close() }

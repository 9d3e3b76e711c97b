package remote

import (
	"context"
	"io"
	"net/http"

	"golang.org/x/time/rate"
)

// Limiter caps the bytes per second sent to a store, shared by every
// upload of a process. Bytes are paced as they are sent, in pieces of at
// most limitPiece, so that a site's own traffic never waits behind a
// whole pack sent at line speed.
type Limiter struct {
	l *rate.Limiter
}

const limitPiece = 32 << 10

// NewLimiter returns a limiter for bytesPerSec; nil when bytesPerSec is 0
// or less (no limit). A nil *Limiter is valid and limits nothing.
func NewLimiter(bytesPerSec int64) *Limiter {
	if bytesPerSec <= 0 {
		return nil
	}
	burst := min(max(int(bytesPerSec/8), limitPiece), 1<<20)
	return &Limiter{l: rate.NewLimiter(rate.Limit(bytesPerSec), burst)}
}

func (l *Limiter) wait(ctx context.Context, n int) error {
	for n > 0 {
		k := min(n, l.l.Burst())
		if err := l.l.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// Reader paces reads from rd.
func (l *Limiter) Reader(ctx context.Context, rd io.Reader) io.Reader {
	if l == nil {
		return rd
	}
	return &limitedReader{ctx: ctx, rd: rd, l: l}
}

type limitedReader struct {
	ctx context.Context
	rd  io.Reader
	l   *Limiter
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if len(p) > limitPiece {
		p = p[:limitPiece]
	}
	n, err := r.rd.Read(p)
	if n > 0 {
		if werr := r.l.wait(r.ctx, n); werr != nil {
			return n, werr
		}
	}
	return n, err
}

// RoundTripper paces the bodies of requests sent through rt (uploads);
// responses are not limited.
func (l *Limiter) RoundTripper(rt http.RoundTripper) http.RoundTripper {
	if l == nil {
		return rt
	}
	return limitedTransport{rt: rt, l: l}
}

type limitedTransport struct {
	rt http.RoundTripper
	l  *Limiter
}

func (t limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return t.rt.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.Body = limitedBody{Reader: t.l.Reader(req.Context(), req.Body), c: req.Body}
	return t.rt.RoundTrip(r)
}

type limitedBody struct {
	io.Reader
	c io.Closer
}

func (b limitedBody) Close() error { return b.c.Close() }

// Limit paces the Save calls of a backend that is not reached over HTTP
// (a local directory on a network mount, say).
func Limit(b Backend, l *Limiter) Backend {
	if l == nil {
		return b
	}
	return &limitedBackend{Backend: b, l: l}
}

type limitedBackend struct {
	Backend
	l *Limiter
}

func (b *limitedBackend) Save(ctx context.Context, h Handle, data []byte) error {
	if err := b.l.wait(ctx, len(data)); err != nil {
		return err
	}
	return b.Backend.Save(ctx, h, data)
}

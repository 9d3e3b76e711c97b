// Package s3proxy is a recording reverse proxy for tests: it listens on
// loopback in front of an S3 server (MinIO) and records the method, path
// and status of every request that passes, so a test can prove what a
// client sent (e.g. that the backing-up side never deletes). Clients sign
// their requests for the proxy's address; the proxy forwards the Host
// header unchanged, so signatures stay valid.
package s3proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Request is one request the proxy forwarded.
type Request struct {
	Method string
	Path   string // /bucket/key, unescaped
	Query  string
	Status int // the server's answer; 502 when it could not be reached
	// ContentMD5 and Checksum say whether the request carried an integrity
	// header: Content-MD5, or an x-amz-checksum-* header.
	ContentMD5, Checksum bool
}

func (r Request) String() string {
	return fmt.Sprintf("%s %s?%s %d", r.Method, r.Path, r.Query, r.Status)
}

// Proxy forwards to one S3 server and records what passes.
type Proxy struct {
	srv *httptest.Server
	rp  *httputil.ReverseProxy

	mu   sync.Mutex
	reqs []Request
}

// New starts a proxy on 127.0.0.1 in front of target, an S3 endpoint URL
// such as http://127.0.0.1:9000.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("s3proxy: target %q is not an http(s) URL", target)
	}
	p := &Proxy{}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
			pr.Out.Host = pr.In.Host // signed by the client
		},
	}
	p.srv = httptest.NewServer(p)
	return p, nil
}

// ServeHTTP forwards r and records it with the status it got.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		ContentMD5: r.Header.Get("Content-MD5") != "",
	}
	for k := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") {
			rec.Checksum = true
		}
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	p.rp.ServeHTTP(sw, r)
	rec.Status = sw.status
	p.mu.Lock()
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()
}

// Endpoint is the proxy's host:port, for an S3 client's endpoint.
func (p *Proxy) Endpoint() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// Requests returns a copy of everything recorded so far.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.reqs...)
}

// Counts returns the number of requests per method.
func (p *Proxy) Counts() map[string]int {
	m := map[string]int{}
	for _, r := range p.Requests() {
		m[r.Method]++
	}
	return m
}

// Summary is Counts as text, methods sorted: "GET=12 HEAD=3 PUT=40".
func (p *Proxy) Summary() string {
	m := p.Counts()
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed answers (long listings) through as they come.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Package s3proxy is a recording, fault-injecting reverse proxy for tests:
// it listens on loopback in front of an S3 server (MinIO) and records the
// method, path and status of every request that passes, so a test can prove
// what a client sent (e.g. that the backing-up side never deletes). Clients
// sign their requests for the proxy's address; the proxy forwards the Host
// header unchanged, so signatures stay valid.
//
// A test can also make the store misbehave at run time (faults.go): delay
// answers, answer 500 or 503, reset the connection partway through an
// upload, truncate or flip a bit of a download, and stop listening
// altogether (Stop, then Start on the same address) so that connections
// are refused.
package s3proxy

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Request is one request the proxy answered.
type Request struct {
	Method string
	Path   string // /bucket/key, unescaped
	Query  string
	Status int // the answer; 502 when the server could not be reached, 0 when the connection was reset
	// ContentMD5 and Checksum say whether the request carried an integrity
	// header: Content-MD5, or an x-amz-checksum-* header.
	ContentMD5, Checksum bool
	// Fault names the fault applied to the request, "" for none.
	Fault string
}

func (r Request) String() string {
	s := fmt.Sprintf("%s %s?%s %d", r.Method, r.Path, r.Query, r.Status)
	if r.Fault != "" {
		s += " [" + r.Fault + "]"
	}
	return s
}

// Proxy forwards to one S3 server and records what passes.
type Proxy struct {
	rp   *httputil.ReverseProxy
	addr string // host:port, kept across Stop and Start

	mu     sync.Mutex
	srv    *http.Server // nil while stopped
	served chan struct{}
	reqs   []Request
	rules  []*rule
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
		// A download cut short on purpose is not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("s3proxy: listen on loopback: %w", err)
	}
	p.addr = l.Addr().String()
	p.serve(l)
	return p, nil
}

func (p *Proxy) serve(l net.Listener) {
	srv := &http.Server{Handler: p, ErrorLog: log.New(io.Discard, "", 0)}
	served := make(chan struct{})
	p.mu.Lock()
	p.srv, p.served = srv, served
	p.mu.Unlock()
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
}

// Stop closes the listener and every open connection: until Start, clients
// get "connection refused", and requests in flight fail. Stopping a stopped
// proxy does nothing.
func (p *Proxy) Stop() {
	p.mu.Lock()
	srv, served := p.srv, p.served
	p.srv = nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	_ = srv.Close()
	<-served
}

// Start listens again on the address the proxy had. Starting a running
// proxy does nothing.
func (p *Proxy) Start() error {
	p.mu.Lock()
	running := p.srv != nil
	p.mu.Unlock()
	if running {
		return nil
	}
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("s3proxy: listen again on %s: %w", p.addr, err)
	}
	p.serve(l)
	return nil
}

// ServeHTTP forwards r, applying the first fault rule that matches, and
// records it with the answer it got.
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
	f := p.match(r)
	if f != nil {
		rec.Fault = f.String()
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	// Recorded even when the handler is aborted (a cut download panics
	// with http.ErrAbortHandler to drop the connection).
	defer func() {
		rec.Status = sw.status
		p.mu.Lock()
		p.reqs = append(p.reqs, rec)
		p.mu.Unlock()
	}()
	fw, handled := apply(f, w, sw, r)
	if handled {
		return
	}
	p.rp.ServeHTTP(fw, r)
}

// Endpoint is the proxy's host:port, for an S3 client's endpoint.
func (p *Proxy) Endpoint() string { return p.addr }

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

// Faulted returns the number of requests each fault was applied to, by
// the fault's name.
func (p *Proxy) Faulted() map[string]int {
	m := map[string]int{}
	for _, r := range p.Requests() {
		if r.Fault != "" {
			m[r.Fault]++
		}
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

// Close stops the proxy for good.
func (p *Proxy) Close() { p.Stop() }

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

// errCut ends a download the proxy cuts short.
var errCut = errors.New("s3proxy: answer cut short on purpose")

package s3proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Action is what a Rule does to the requests it matches.
type Action int

const (
	// Delay forwards the request after Rule.Latency.
	Delay Action = iota
	// Fail answers Rule.Status (500 or 503) with an S3 error document;
	// the server never sees the request.
	Fail
	// Reset reads Rule.Bytes of the request body (all of it if shorter)
	// and then resets the connection, as a network failure in the middle
	// of an upload would; the server never sees the request.
	Reset
	// Truncate forwards the request and cuts a successful answer's body
	// after Rule.Bytes bytes (modulo its length, so it is always cut),
	// then drops the connection: the client sees fewer bytes than the
	// Content-Length it was promised.
	Truncate
	// Flip forwards the request and flips one bit of a successful
	// answer's body at byte Rule.Bytes (modulo its length); the length
	// is unchanged, so only the client's own checks can tell.
	Flip
)

// Rule selects requests and says what to do to them. Latency applies
// before any action.
type Rule struct {
	Method     string // "" matches every method
	PathPrefix string // matched against the unescaped path, /bucket/key; "" matches every path
	// Count applies the rule to the next Count matching requests only;
	// 0 applies it until Clear.
	Count   int
	Latency time.Duration
	Action  Action
	Status  int   // for Fail
	Bytes   int64 // for Reset, Truncate and Flip
}

// String names the fault as the request log shows it.
func (r Rule) String() string {
	var parts []string
	if r.Latency > 0 {
		parts = append(parts, "latency "+r.Latency.String())
	}
	switch r.Action {
	case Fail:
		parts = append(parts, "status "+strconv.Itoa(r.Status))
	case Reset:
		parts = append(parts, fmt.Sprintf("reset after %d bytes", r.Bytes))
	case Truncate:
		parts = append(parts, fmt.Sprintf("truncate at %d", r.Bytes))
	case Flip:
		parts = append(parts, fmt.Sprintf("flip bit at %d", r.Bytes))
	}
	return strings.Join(parts, ", ")
}

type rule struct {
	Rule
	used int
}

func (r *rule) matches(req *http.Request) bool {
	return (r.Method == "" || r.Method == req.Method) &&
		strings.HasPrefix(req.URL.Path, r.PathPrefix) &&
		(r.Count == 0 || r.used < r.Count)
}

// Inject adds a rule. Rules are tried in the order they were added, and
// the first that matches a request is the only one applied to it.
func (p *Proxy) Inject(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &rule{Rule: r})
}

// Clear removes every rule: from now on requests pass untouched.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// match returns the rule to apply to req, counting the use, or nil.
func (p *Proxy) match(req *http.Request) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.rules {
		if r.matches(req) {
			r.used++
			f := r.Rule
			return &f
		}
	}
	return nil
}

// apply carries out the fault on the request. It returns the writer to
// forward the answer through, or handled when the request was answered
// (or its connection reset) without forwarding.
func apply(f *Rule, w http.ResponseWriter, sw *statusWriter, r *http.Request) (fw http.ResponseWriter, handled bool) {
	if f == nil {
		return sw, false
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
		}
	}
	switch f.Action {
	case Fail:
		failWith(sw, r, f.Status)
		return nil, true
	case Reset:
		_, _ = io.CopyN(io.Discard, r.Body, f.Bytes)
		sw.status = 0
		reset(w)
		return nil, true
	case Truncate, Flip:
		return &cutWriter{statusWriter: sw, rule: *f}, false
	}
	return sw, false
}

// failWith answers status with the error document S3 sends for it.
func failWith(w http.ResponseWriter, r *http.Request, status int) {
	code := "InternalError"
	if status == http.StatusServiceUnavailable {
		code = "SlowDown"
	}
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>injected by s3proxy</Message><Resource>%s</Resource><RequestId>s3proxy</RequestId></Error>`,
		code, r.URL.Path)
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
}

// reset drops the client's connection with a TCP reset (linger 0) rather
// than an orderly close, as a failing network or middlebox does.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// cutWriter truncates or flips a bit of a successful answer's body.
type cutWriter struct {
	*statusWriter
	rule    Rule
	active  bool  // the answer is a 2xx with a known, non-zero length
	at      int64 // where to cut or flip
	written int64
}

func (c *cutWriter) WriteHeader(code int) {
	if n, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64); err == nil && n > 0 && code/100 == 2 {
		c.active, c.at = true, c.rule.Bytes%n
	}
	c.statusWriter.WriteHeader(code)
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if !c.active {
		return c.statusWriter.Write(b)
	}
	start := c.written
	c.written += int64(len(b))
	switch c.rule.Action {
	case Truncate:
		keep := max(0, c.at-start)
		if keep >= int64(len(b)) {
			return c.statusWriter.Write(b)
		}
		n, _ := c.statusWriter.Write(b[:keep])
		// The bytes before the cut reach the client before the
		// connection drops (ReverseProxy aborts on this error).
		c.Flush()
		return n, errCut
	case Flip:
		if c.at >= start && c.at < c.written {
			b = append([]byte(nil), b...)
			b[c.at-start] ^= 1 << (c.rule.Bytes % 8)
		}
	}
	return c.statusWriter.Write(b)
}

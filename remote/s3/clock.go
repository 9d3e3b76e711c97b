package s3

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// WithClockOffset signs every request as if this machine's clock were off
// by d. minio-go signs with time.Now, and Go binaries ignore libfaketime, so
// this is how the tests give a process a wrong clock; nothing else sets it.
func WithClockOffset(d time.Duration) Option {
	return func(o *options) { o.clockOffset = d }
}

// clockWatch notes the server's Date header on refused requests, so that a
// RequestTimeTooSkewed error can say by how much the clocks differ. offset
// is the clock offset the requests were signed with (see WithClockOffset).
type clockWatch struct {
	rt     http.RoundTripper
	offset time.Duration
	// skew is our clock minus the server's, in nanoseconds, as of the last
	// refused request; valid once seen is set.
	skew atomic.Int64
	seen atomic.Bool
}

func (c *clockWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusForbidden {
		return resp, err
	}
	if server, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
		c.skew.Store(int64(time.Now().Add(c.offset).Sub(server)))
		c.seen.Store(true)
	}
	return resp, err
}

// describe says how far our clock is from the server's, or "" if unknown.
// The server's Date header has a resolution of one second.
func (c *clockWatch) describe() string {
	if c == nil || !c.seen.Load() {
		return ""
	}
	d := time.Duration(c.skew.Load())
	switch {
	case d > 0:
		return fmt.Sprintf("this computer's clock is about %s ahead of the server's", roughly(d))
	case d < 0:
		return fmt.Sprintf("this computer's clock is about %s behind the server's", roughly(-d))
	}
	return ""
}

// roughly prints d to the minute (or second, under a minute): the Date
// header it comes from is truncated to the second, so "2h0m1s" would claim
// a precision the measurement does not have.
func roughly(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
}

// resigner signs each request again with the clock moved by offset. It
// implements AWS Signature V4 for header-signed requests the way minio-go's
// signer builds them (same canonical headers, query and path encoding);
// streaming-signed uploads, whose chunk signatures chain from the header's,
// are passed on as they are.
type resigner struct {
	rt                    http.RoundTripper
	offset                time.Duration
	keyID, secret, region string
}

const sigV4 = "AWS4-HMAC-SHA256"

func (s *resigner) RoundTrip(req *http.Request) (*http.Response, error) {
	auth := req.Header.Get("Authorization")
	payload := req.Header.Get("X-Amz-Content-Sha256")
	if !strings.HasPrefix(auth, sigV4+" ") || strings.HasPrefix(payload, "STREAMING-") {
		return s.rt.RoundTrip(req)
	}
	if payload == "" {
		payload = "UNSIGNED-PAYLOAD"
	}
	region := s.region
	if _, cred, ok := strings.Cut(auth, "Credential="); ok {
		// KEY/DATE/REGION/SERVICE/aws4_request: keep the region minio-go chose.
		if parts := strings.Split(strings.SplitN(cred, ",", 2)[0], "/"); len(parts) == 5 {
			region = parts[2]
		}
	}
	r := req.Clone(req.Context())
	t := time.Now().Add(s.offset).UTC()
	r.Header.Set("X-Amz-Date", t.Format("20060102T150405Z"))

	var names []string
	for k := range r.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Accept-Encoding", "Authorization", "User-Agent":
			continue
		}
		names = append(names, strings.ToLower(k))
	}
	names = append(names, "host")
	sort.Strings(names)
	var hdr strings.Builder
	for _, k := range names {
		hdr.WriteString(k + ":")
		if k == "host" {
			host := r.Host
			if host == "" {
				host = r.URL.Host
			}
			hdr.WriteString(host)
		} else {
			for i, v := range r.Header.Values(k) {
				if i > 0 {
					hdr.WriteByte(',')
				}
				hdr.WriteString(strings.Join(strings.Fields(v), " "))
			}
		}
		hdr.WriteByte('\n')
	}
	signed := strings.Join(names, ";")
	query := strings.ReplaceAll(r.URL.Query().Encode(), "+", "%20")
	canonical := strings.Join([]string{r.Method, s3utils.EncodePath(r.URL.Path), query, hdr.String(), signed, payload}, "\n")

	day := t.Format("20060102")
	scope := day + "/" + region + "/s3/aws4_request"
	sum := sha256.Sum256([]byte(canonical))
	toSign := sigV4 + "\n" + t.Format("20060102T150405Z") + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := []byte("AWS4" + s.secret)
	for _, part := range []string{day, region, "s3", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	sig := hex.EncodeToString(hmacSHA256(key, toSign))
	r.Header.Set("Authorization", sigV4+" Credential="+s.keyID+"/"+scope+", SignedHeaders="+signed+", Signature="+sig)
	return s.rt.RoundTrip(r)
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

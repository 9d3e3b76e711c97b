package s3

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config addresses a repository in a bucket. It carries the secret key;
// String, GoString, LogValue and Location leave the secret out, so a Config
// is safe to print or log (json.Marshal is not covered).
type Config struct {
	Endpoint     string // host or host:port, no scheme
	UseHTTPS     bool
	Bucket       string
	Prefix       string // folder inside the bucket, no leading or trailing slash; may be empty
	KeyID        string
	Secret       string
	SessionToken string
	Region       string // empty: ask the server
}

const urlForms = "s3:https://HOST[:PORT]/BUCKET[/PREFIX], s3:http://HOST[:PORT]/BUCKET[/PREFIX] or s3:HOST[:PORT]/BUCKET[/PREFIX]"

// ParseURL parses a repository address of one of these forms:
//
//	s3:https://HOST[:PORT]/BUCKET[/PREFIX]
//	s3:http://HOST[:PORT]/BUCKET[/PREFIX]
//	s3:HOST[:PORT]/BUCKET[/PREFIX]      (https)
//
// Credentials are not part of the address; see ApplyEnv.
func ParseURL(s string) (Config, error) {
	c, err := parseURL(s)
	if err != nil {
		return Config{}, fmt.Errorf("invalid S3 address %q: %w (expected %s)", redactAddress(s), err, urlForms)
	}
	return c, nil
}

func parseURL(s string) (Config, error) {
	rest, ok := strings.CutPrefix(s, "s3:")
	if !ok {
		return Config{}, errors.New(`it does not start with "s3:"`)
	}
	c := Config{UseHTTPS: true}
	switch {
	case strings.HasPrefix(rest, "https://"):
		rest = strings.TrimPrefix(rest, "https://")
	case strings.HasPrefix(rest, "http://"):
		rest = strings.TrimPrefix(rest, "http://")
		c.UseHTTPS = false
	case strings.HasPrefix(rest, "//"):
		return Config{}, errors.New("it has an empty scheme")
	case strings.Contains(rest, "://"):
		scheme, _, _ := strings.Cut(rest, "://")
		return Config{}, fmt.Errorf("scheme %q is neither http nor https", scheme)
	}
	if strings.ContainsAny(rest, "?#") {
		return Config{}, errors.New("it has a query or fragment")
	}
	host, bucketPath, _ := strings.Cut(rest, "/")
	if strings.Contains(host, "@") {
		return Config{}, errors.New("it contains credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead")
	}
	if err := checkHost(host); err != nil {
		return Config{}, err
	}
	c.Endpoint = host

	bucket, prefix, _ := strings.Cut(bucketPath, "/")
	if bucket == "" {
		return Config{}, errors.New("the bucket is missing")
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return Config{}, fmt.Errorf("bucket name %q: %w", bucket, err)
	}
	c.Bucket = bucket

	var parts []string
	for p := range strings.SplitSeq(prefix, "/") {
		switch p {
		case "":
			continue // tolerate "bucket/", "a//b"
		case ".", "..":
			return Config{}, fmt.Errorf("prefix %q contains %q", prefix, p)
		}
		parts = append(parts, p)
	}
	c.Prefix = strings.Join(parts, "/")
	return c, nil
}

// checkHost accepts host, host:port, [v6] and [v6]:port.
func checkHost(hostport string) error {
	if hostport == "" {
		return errors.New("the host is missing")
	}
	host, port := hostport, ""
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		host, port = h, p
		if port == "" {
			return fmt.Errorf("host %q has an empty port", hostport)
		}
	} else if strings.HasPrefix(hostport, "[") && strings.HasSuffix(hostport, "]") {
		host = hostport[1 : len(hostport)-1]
	} else if strings.Contains(hostport, ":") {
		return fmt.Errorf("host %q: %w", hostport, err)
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("host %q is not a host name", host)
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q is not a host name", host)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("host %q is not a host name", host)
			}
		}
	}
	return nil
}

// redactAddress removes any user info from an address before it is echoed
// in an error, in case someone put a secret there.
func redactAddress(s string) string {
	rest, ok := strings.CutPrefix(s, "s3:")
	if !ok {
		rest = s
	}
	scheme := ""
	if i := strings.Index(rest, "://"); i >= 0 {
		scheme, rest = rest[:i+3], rest[i+3:]
	}
	host, tail, hasTail := strings.Cut(rest, "/")
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = "REDACTED@" + host[i+1:]
	}
	out := scheme + host
	if hasTail {
		out += "/" + tail
	}
	if ok {
		out = "s3:" + out
	}
	return out
}

// ApplyEnv fills empty credential and region fields from the AWS_* variables
// that getenv (os.Getenv in production) returns. Values already set win, so
// a configuration file can override the environment.
func (c *Config) ApplyEnv(getenv func(string) string) {
	fill := func(dst *string, name string) {
		if *dst == "" {
			*dst = getenv(name)
		}
	}
	fill(&c.KeyID, "AWS_ACCESS_KEY_ID")
	fill(&c.Secret, "AWS_SECRET_ACCESS_KEY")
	fill(&c.SessionToken, "AWS_SESSION_TOKEN")
	fill(&c.Region, "AWS_DEFAULT_REGION")
}

// Location is the repository address in ParseURL's form, without credentials.
func (c Config) Location() string {
	scheme := "http"
	if c.UseHTTPS {
		scheme = "https"
	}
	u := url.URL{Scheme: scheme, Host: c.Endpoint, Path: "/" + c.Bucket}
	if c.Prefix != "" {
		u.Path += "/" + c.Prefix
	}
	return "s3:" + u.String()
}

// String is Location plus the access key ID, never the secret.
func (c Config) String() string {
	if c.KeyID == "" {
		return c.Location()
	}
	return c.Location() + " (access key " + c.KeyID + ")"
}

// LogValue keeps structured logs (JSON included) from printing the secret.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

// GoString keeps %#v from printing the secret.
func (c Config) GoString() string {
	return fmt.Sprintf("s3.Config{Endpoint:%q, UseHTTPS:%t, Bucket:%q, Prefix:%q, KeyID:%q, Secret:%s, SessionToken:%s, Region:%q}",
		c.Endpoint, c.UseHTTPS, c.Bucket, c.Prefix, c.KeyID, redacted(c.Secret), redacted(c.SessionToken), c.Region)
}

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "REDACTED"
}

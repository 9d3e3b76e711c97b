// Package kit is the recovery kit: everything an owner needs to restore
// from the escrow on a fresh machine (the repository's address, its ID, the
// password, and the storage credential or its name), as a small versioned
// text file a person can read, print and type back in; a printable page
// with a QR code of the essentials; and the marker that says the owner has
// stored it.
//
// The text format, version 1:
//
//	escrow recovery kit v1
//	# comment lines and blank lines are ignored
//	repository: s3:https://s3.example.com/backups/site1
//	repository-id: 3fa2…(64 hex digits)
//	password: correct horse battery staple
//
// One "key: value" per line; keys are lowercase. A value is taken as
// written, spaces around it trimmed, unless it starts with a double quote:
// then it is a Go string literal (strconv.Quote), which the writer uses for
// any value with surrounding spaces or unprintable characters, so that
// every password survives the trip exactly. Unknown keys are ignored (and
// reported), so later writers may add optional lines; anything a reader
// must understand bumps the version, and readers refuse versions they do
// not know.
package kit

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/escrow-backup/escrow/remote/s3"
)

// Version is the kit format this package writes and the only one it reads.
const Version = 1

const headerPrefix = "escrow recovery kit"

// Header is the first line of a kit.
var Header = fmt.Sprintf("%s v%d", headerPrefix, Version)

// MaxSize bounds what Parse reads: a kit is a few hundred bytes.
const MaxSize = 64 << 10

// ErrNotKit means the text is not a recovery kit at all.
var ErrNotKit = errors.New("not an escrow recovery kit")

// VersionError is a kit of a format version this escrow does not read.
type VersionError struct{ Version int }

func (e *VersionError) Error() string {
	return fmt.Sprintf("this is a version %d recovery kit, and this escrow reads version %d only: restore with a newer escrow (or with restic, using the repository and password lines)", e.Version, Version)
}

// Kit is what a recovery kit holds.
type Kit struct {
	// Repository is the address escrow and restic take: an absolute
	// directory, or s3:https://HOST[:PORT]/BUCKET[/PREFIX].
	Repository string
	// Region is the S3 region; empty when the store needs none.
	Region string
	// RepositoryID is the repository config's ID, 64 hex digits: a restore
	// checks that the repository it opened is this one.
	RepositoryID string
	// KeyID names the key file the password opens (informative).
	KeyID string
	// Created is when the kit was made; Host is the server it was made on.
	Created time.Time
	Host    string
	// Password opens the repository.
	Password string
	// AccessKeyID names an S3 credential that can read the repository;
	// SecretAccessKey (and SessionToken) are present only when the owner
	// chose to put the credential itself in the kit.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string

	// Ignored lists keys Parse did not know, in the order met.
	Ignored []string
}

// IsS3 reports whether the repository is in S3-compatible storage.
func (k *Kit) IsS3() bool { return strings.HasPrefix(k.Repository, "s3:") }

// HasCredentials reports whether the kit holds a whole S3 credential.
func (k *Kit) HasCredentials() bool { return k.AccessKeyID != "" && k.SecretAccessKey != "" }

// Essentials is the smallest kit that restores: address, region, ID,
// password and the credential if the kit holds one. It is what the QR code
// carries.
func (k *Kit) Essentials() *Kit {
	e := &Kit{Repository: k.Repository, Region: k.Region, RepositoryID: k.RepositoryID, Password: k.Password}
	if k.HasCredentials() {
		e.AccessKeyID, e.SecretAccessKey, e.SessionToken = k.AccessKeyID, k.SecretAccessKey, k.SessionToken
	}
	return e
}

// field is one line of the format, in the order written.
type field struct {
	name string
	get  func(*Kit) string
	set  func(*Kit, string) error
	// derived fields repeat part of the address for people; Parse checks
	// them against it.
	derived bool
}

func str(p func(*Kit) *string) (func(*Kit) string, func(*Kit, string) error) {
	return func(k *Kit) string { return *p(k) }, func(k *Kit, v string) error { *p(k) = v; return nil }
}

var fields = func() []field {
	f := func(name string, p func(*Kit) *string) field {
		get, set := str(p)
		return field{name: name, get: get, set: set}
	}
	s3part := func(name string, part func(s3.Config) string) field {
		return field{name: name, derived: true, get: func(k *Kit) string {
			if !k.IsS3() {
				return ""
			}
			c, err := s3.ParseURL(k.Repository)
			if err != nil {
				return ""
			}
			return part(c)
		}}
	}
	return []field{
		f("repository", func(k *Kit) *string { return &k.Repository }),
		s3part("endpoint", func(c s3.Config) string { return c.Endpoint }),
		s3part("bucket", func(c s3.Config) string { return c.Bucket }),
		s3part("prefix", func(c s3.Config) string { return c.Prefix }),
		f("region", func(k *Kit) *string { return &k.Region }),
		f("repository-id", func(k *Kit) *string { return &k.RepositoryID }),
		f("key-id", func(k *Kit) *string { return &k.KeyID }),
		{name: "created",
			get: func(k *Kit) string {
				if k.Created.IsZero() {
					return ""
				}
				return k.Created.Format(time.RFC3339Nano)
			},
			set: func(k *Kit, v string) error {
				t, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					return fmt.Errorf("not a time like %s", time.RFC3339)
				}
				k.Created = t
				return nil
			}},
		f("host", func(k *Kit) *string { return &k.Host }),
		f("password", func(k *Kit) *string { return &k.Password }),
		f("access-key-id", func(k *Kit) *string { return &k.AccessKeyID }),
		f("secret-access-key", func(k *Kit) *string { return &k.SecretAccessKey }),
		f("session-token", func(k *Kit) *string { return &k.SessionToken }),
	}
}()

func lookup(name string) *field {
	for i := range fields {
		if fields[i].name == name {
			return &fields[i]
		}
	}
	return nil
}

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Check reports what makes k unusable, every problem at once.
func (k *Kit) Check() error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	switch {
	case k.Repository == "":
		add("the repository line is missing")
	case k.IsS3():
		if _, err := s3.ParseURL(k.Repository); err != nil {
			add("repository: %v", err)
		}
	case !filepath.IsAbs(strings.TrimPrefix(k.Repository, "local:")):
		add("repository %q is neither an absolute directory nor an s3: address", k.Repository)
	}
	if k.RepositoryID == "" {
		add("the repository-id line is missing")
	} else if !hexID.MatchString(k.RepositoryID) {
		add("repository-id %q is not 64 lowercase hex digits", k.RepositoryID)
	}
	if k.KeyID != "" && !hexID.MatchString(k.KeyID) {
		add("key-id %q is not 64 lowercase hex digits", k.KeyID)
	}
	if k.Password == "" {
		add("the password line is missing")
	}
	if k.SecretAccessKey != "" && k.AccessKeyID == "" {
		add("secret-access-key without access-key-id")
	}
	if k.SessionToken != "" && k.SecretAccessKey == "" {
		add("session-token without secret-access-key")
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

// MarshalText writes the kit with instructions for the person holding it.
func (k *Kit) MarshalText() ([]byte, error) { return k.format(true) }

// Compact writes the kit without comments, as the QR code carries it.
func (k *Kit) Compact() ([]byte, error) { return k.format(false) }

func (k *Kit) format(comments bool) ([]byte, error) {
	if err := k.Check(); err != nil {
		return nil, fmt.Errorf("incomplete recovery kit: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(Header + "\n")
	if comments {
		writeComments(&b, instructions(k))
	}
	for _, f := range fields {
		v := f.get(k)
		if v == "" {
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", f.name, encodeValue(v))
		if comments && f.name == "access-key-id" && k.SecretAccessKey == "" {
			writeComments(&b, missingSecret(k))
		}
	}
	return b.Bytes(), nil
}

// encodeValue quotes values that would not survive being written bare.
func encodeValue(v string) string {
	if needsQuote(v) {
		return strconv.Quote(v)
	}
	return v
}

func needsQuote(v string) bool {
	if v == "" || strings.HasPrefix(v, `"`) || !utf8.ValidString(v) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(v)
	l, _ := utf8.DecodeLastRuneInString(v)
	if unicode.IsSpace(r) || unicode.IsSpace(l) {
		return true
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return true
		}
	}
	return false
}

func writeComments(b *bytes.Buffer, lines []string) {
	for _, l := range lines {
		// Comments carry host and bucket names: keep them on their line.
		l = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, l)
		b.WriteString(strings.TrimRight("# "+l, " ") + "\n")
	}
}

func instructions(k *Kit) []string {
	host := k.Host
	if host == "" {
		host = "your server"
	}
	lines := []string{
		"",
		"This kit opens the encrypted backups of " + host + ".",
		"Keep it OFF that server: printed in a safe, in a password manager,",
		"on a USB stick in a drawer. Whoever holds it can read every backup;",
		"without the password nobody can, not even you.",
		"",
		restoreLine(k),
		"  escrow restore latest --kit THIS-FILE --target /tmp/restored",
		"or with restic, using the repository and password below:",
		"  restic -r REPOSITORY restore latest --target /tmp/restored",
	}
	if k.IsS3() {
		lines = append(lines, "  (restic reads the S3 credential from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	} else {
		lines = append(lines, "  (the repository is a directory: mount its disk at the same path, or pass --repo)")
	}
	return append(lines, "")
}

func restoreLine(k *Kit) string {
	if k.IsS3() && !k.HasCredentials() {
		return "To restore on any machine with escrow and the S3 credential (see below):"
	}
	return "To restore on any machine with escrow (this kit is all it needs):"
}

func missingSecret(k *Kit) []string {
	bucket := "the bucket"
	if c, err := s3.ParseURL(k.Repository); err == nil {
		bucket = "bucket " + c.Bucket
	}
	return []string{
		"The secret of this access key is NOT in this kit. To restore, set",
		"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a credential that can read",
		bucket + ": this one's, or the owner's read-only key.",
	}
}

// Parse reads a kit. It refuses anything that is not a version 1 kit with a
// repository, its ID and a password, naming each problem with its line.
func Parse(data []byte) (*Kit, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: %d bytes is far more than a kit holds", ErrNotKit, len(data))
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from an editor
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: it is not UTF-8 text", ErrNotKit)
	}
	lines := strings.Split(string(data), "\n")
	i := 0
	for i < len(lines) && strings.TrimSpace(lines[i]) == "" {
		i++
	}
	if i == len(lines) {
		return nil, fmt.Errorf("%w: it is empty", ErrNotKit)
	}
	if err := checkHeader(strings.TrimSpace(lines[i])); err != nil {
		return nil, err
	}
	k := &Kit{}
	seen := map[string]int{}
	var probs []string
	bad := func(n int, format string, args ...any) {
		probs = append(probs, fmt.Sprintf("line %d: ", n+1)+fmt.Sprintf(format, args...))
	}
	derived := map[string]string{}
	for n := i + 1; n < len(lines); n++ {
		line := strings.TrimSpace(lines[n])
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, raw, ok := strings.Cut(line, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || !validName(name) {
			bad(n, `expected "name: value"`)
			continue
		}
		if prev, dup := seen[name]; dup {
			bad(n, "%s given again (first on line %d)", name, prev+1)
			continue
		}
		seen[name] = n
		v, err := decodeValue(strings.TrimSpace(raw))
		if err != nil {
			bad(n, "%s: %v", name, err)
			continue
		}
		f := lookup(name)
		switch {
		case f == nil:
			k.Ignored = append(k.Ignored, name)
		case f.derived:
			derived[name] = v
		default:
			if err := f.set(k, v); err != nil {
				bad(n, "%s: %v", name, err)
			}
		}
	}
	if len(probs) == 0 {
		if err := k.Check(); err != nil {
			probs = append(probs, err.Error())
		}
	}
	if len(probs) == 0 {
		for name, v := range derived {
			if want := lookup(name).get(k); v != want {
				bad(seen[name], "%s %q does not match the repository address %s; fix the line that is wrong", name, v, k.Repository)
			}
		}
	}
	if len(probs) > 0 {
		return nil, fmt.Errorf("damaged recovery kit: %s", strings.Join(probs, "; "))
	}
	return k, nil
}

var headerRE = regexp.MustCompile(`^escrow recovery kit v([0-9]{1,9})$`)

func checkHeader(line string) error {
	m := headerRE.FindStringSubmatch(strings.ToLower(line))
	switch {
	case m != nil:
		if v, _ := strconv.Atoi(m[1]); v != Version {
			return &VersionError{Version: v}
		}
		return nil
	case strings.HasPrefix(strings.ToLower(line), headerPrefix):
		return fmt.Errorf("%w: the first line %q names no version (expected %q)", ErrNotKit, trim(line), Header)
	}
	return fmt.Errorf("%w: the first line must be %q, not %q", ErrNotKit, Header, trim(line))
}

func trim(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func validName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func decodeValue(raw string) (string, error) {
	if !strings.HasPrefix(raw, `"`) {
		return raw, nil
	}
	v, err := strconv.Unquote(raw)
	if err != nil {
		return "", errors.New("the quoted value is not closed or has a bad escape")
	}
	return v, nil
}

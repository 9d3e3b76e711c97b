package database

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/escrow-backup/escrow/internal/failpoint"
	"github.com/escrow-backup/escrow/source"
)

// tools finds and runs the database programs in the PATH of env, which is
// also their whole environment.
type tools struct {
	env []string
}

// find returns the first of names found in PATH; install names the package
// that provides them, for the error.
func (t *tools) find(install string, names ...string) (string, error) {
	path := getenv(t.env, "PATH")
	for _, n := range names {
		for _, dir := range filepath.SplitList(path) {
			// Like exec.LookPath, never a program found relative to the
			// current folder.
			if !filepath.IsAbs(dir) {
				continue
			}
			p := filepath.Join(dir, n)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%w: %s is not in PATH (%s): install %s", ErrToolMissing, strings.Join(names, " or "), path, install)
}

// envWith returns env without the variables named in drop, plus add.
func envWith(env []string, drop []string, add ...string) []string {
	out := make([]string, 0, len(env)+len(add))
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, d := range drop {
			if name == d {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return append(out, add...)
}

func getenv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}

// query runs a client program to completion with stdin as its input and
// returns its standard output. A failure carries the end of its standard
// error, where the clients say what went wrong.
func query(ctx context.Context, env, argv []string, stdin string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	source.KillWithParent(cmd)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	errb := &tailBuffer{max: 4096}
	cmd.Stdout, cmd.Stderr = &out, errb
	if err := cmd.Run(); err != nil {
		return "", toolError(argv[0], err, errb.String())
	}
	return out.String(), nil
}

func toolError(tool string, err error, stderr string) error {
	if msg := strings.TrimSpace(stderr); msg != "" {
		return fmt.Errorf("%s failed: %w: %s", filepath.Base(tool), err, msg)
	}
	return fmt.Errorf("%s failed: %w", filepath.Base(tool), err)
}

// secrets is a private folder (mode 0700, files 0600) for the credential
// files the tools read, made on first use and removed by remove.
type secrets struct {
	parent string
	dir    string
}

func newSecrets(parent string) *secrets { return &secrets{parent: parent} }

// write stores content in a new file of mode 0600 and returns its path.
func (s *secrets) write(name, content string) (string, error) {
	if s.dir == "" {
		dir, err := makeScratch(s.parent, secretsPrefix)
		if err != nil {
			return "", fmt.Errorf("private folder for credentials: %w", err)
		}
		s.dir = dir
	}
	p := filepath.Join(s.dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return "", err
	}
	return p, f.Close()
}

func (s *secrets) remove() {
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// checkedReader passes a dump through, counting it and keeping its end. At
// the end of the input it returns io.EOF only if complete accepts the end:
// a tool that exits 0 after writing half a dump (a wrapper script, a
// bug, a full disk on the server) must not pass for a good dump.
type checkedReader struct {
	rd       io.Reader
	complete func(tail []byte) bool
	progress func(bytes uint64)
	n        uint64
	tail     []byte
}

// failpointStride is how many bytes of a dump pass for each hit of the
// dump-mid failpoint.
const failpointStride = 64 << 10

// tailSize is how much of the end of a dump the trailer checks see.
const tailSize = 4096

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.rd.Read(p)
	if n > 0 {
		// The failpoint counts bytes, not reads: how much one read returns
		// depends on the pipe and the scheduler, and a crash test must kill
		// at the same point of a dump every run.
		for range (c.n+uint64(n))/failpointStride - c.n/failpointStride {
			failpoint.Hit(failpoint.DumpMid)
		}
		c.n += uint64(n)
		// Keep the last tailSize bytes at least, copying no more of a
		// large read than that.
		in := p[:n]
		if len(in) >= tailSize {
			c.tail, in = c.tail[:0], in[len(in)-tailSize:]
		}
		c.tail = append(c.tail, in...)
		if len(c.tail) > 2*tailSize {
			c.tail = append(c.tail[:0], c.tail[len(c.tail)-tailSize:]...)
		}
		if c.progress != nil {
			c.progress(c.n)
		}
	}
	if errors.Is(err, io.EOF) && !c.complete(c.tail) {
		return n, fmt.Errorf("%w: the tool exited 0, but its output (%d bytes) lacks the completion line it writes last", ErrTruncated, c.n)
	}
	return n, err
}

// lastLineHasPrefix reports whether the last line of tail, ignoring empty
// lines and those skip accepts, begins with prefix.
func lastLineHasPrefix(tail []byte, prefix string, skip func(line string) bool) bool {
	lines := strings.Split(string(tail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimRight(lines[i], "\r \t")
		if l == "" || (skip != nil && skip(l)) {
			continue
		}
		return strings.HasPrefix(l, prefix)
	}
	return false
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

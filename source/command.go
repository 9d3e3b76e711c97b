// Package source provides what a backup reads: streams from commands such as
// database dump tools, which must fail loudly when the tool fails.
package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// Command runs a program and exposes its standard output as a stream. The
// stream ends with an error, never a clean EOF, if the program exits
// non-zero, is killed, or cannot start, so that a truncated dump is never
// mistaken for a complete one.
type Command struct {
	cmd    *exec.Cmd
	stdout pipeReader
	stderr *tailBuffer
	name   string

	once sync.Once
	err  error
	eof  bool // the output ended and the command was waited for
}

// StartCommand starts argv[0] with the remaining arguments. env, when not
// nil, replaces the environment (pass secrets there, never in argv).
func StartCommand(ctx context.Context, argv []string, env []string) (*Command, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("no command given")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if env != nil {
		cmd.Env = env
	}
	KillWithParent(cmd)
	c := &Command{cmd: cmd, stderr: &tailBuffer{max: 4096}, name: argv[0]}
	cmd.Stderr = c.stderr
	out, err := stdoutPipe(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.name, err)
	}
	c.stdout = out
	if err := cmd.Start(); err != nil {
		_ = out.Close()
		return nil, fmt.Errorf("start %s: %w", c.name, err)
	}
	out.started(cmd.Process.Pid)
	return c, nil
}

// pipeReader is the read end of a command's standard output.
type pipeReader interface {
	io.ReadCloser
	// started is called once the command runs, with its process ID.
	started(pid int)
}

// Read reads the command's output. At the end of the output it waits for the
// command and returns io.EOF only if it succeeded.
func (c *Command) Read(p []byte) (int, error) {
	if c.eof {
		return 0, c.endErr()
	}
	n, err := c.stdout.Read(p)
	if errors.Is(err, io.EOF) {
		c.eof = true
		return n, c.endErr()
	}
	return n, err
}

// endErr is what every read after the end of the output returns.
func (c *Command) endErr() error {
	if err := c.wait(); err != nil {
		return err
	}
	return io.EOF
}

func (c *Command) wait() error {
	c.once.Do(func() {
		if err := c.cmd.Wait(); err != nil {
			msg := strings.TrimSpace(c.stderr.String())
			if msg != "" {
				c.err = fmt.Errorf("command %s failed: %w: %s", c.name, err, msg)
			} else {
				c.err = fmt.Errorf("command %s failed: %w", c.name, err)
			}
		}
	})
	return c.err
}

// Close stops the command if it is still running and reports its failure.
func (c *Command) Close() error {
	if !c.eof {
		_ = c.stdout.Close()
	}
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Cancel() // what a cancelled context does: kill the tool
	}
	return c.wait()
}

// tailBuffer keeps the last max bytes written: the end of stderr is where
// dump tools say what went wrong.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}

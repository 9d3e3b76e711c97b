package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/escrow-backup/escrow/progress"
)

// progressIntervalEnv sets how often the plain progress line (and, with
// --json, the status message) is written, for logs that want more or less.
const progressIntervalEnv = "ESCROW_PROGRESS_INTERVAL"

// newProgress starts the progress display of a long command: restic-style
// JSON status messages on stdout with --json, a bar when stderr is a
// terminal, else a plain line on stderr every 10 s; nothing with --quiet
// (nil, which a Reporter's methods accept).
func (g *globalOptions) newProgress(o progress.Options) (*progress.Reporter, error) {
	if g.Quiet {
		return nil, nil
	}
	if v := g.env.getenv(progressIntervalEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, usageError(fmt.Errorf("%s=%q is not a positive duration: set it to e.g. 10s or 500ms, or unset it", progressIntervalEnv, v))
		}
		o.Interval = d
	}
	switch {
	case g.JSON:
		o.Mode, o.Out = progress.JSON, g.env.stdout
	case isTerminal(g.env.stderr):
		o.Mode, o.Out = progress.Bar, g.env.stderr
	default:
		o.Mode, o.Out = progress.Lines, g.env.stderr
	}
	return progress.New(o), nil
}

// isTerminal reports whether v (a reader or writer) is a terminal.
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// printJSONLine writes v as one line: with --json, the long commands print
// restic-style messages, one object a line, the summary last.
func printJSONLine(g *globalOptions, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = g.env.stdout.Write(append(b, '\n'))
	return err
}

// countingReader counts the bytes of a stream into the progress display.
type countingReader struct {
	rd io.Reader
	rp *progress.Reporter
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rd.Read(p)
	c.rp.AddDone(0, uint64(n))
	return n, err
}

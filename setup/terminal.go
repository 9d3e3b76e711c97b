package setup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"
)

// Terminal is how the guided setup talks to the owner. Tests drive the real
// one through a pseudo-terminal.
type Terminal interface {
	// Ask shows question and returns the line typed, trimmed.
	Ask(question string) (string, error)
	// AskSecret is Ask without echo.
	AskSecret(question string) (string, error)
	// Say shows a message.
	Say(format string, args ...any)
}

// ErrNoInput means the input ended before setup had its answers.
var ErrNoInput = errors.New("the input ended before setup had all its answers (run escrow setup on a terminal, or use --preseed FILE --yes)")

// NewTerminal returns a Terminal on in and out. Secrets are read without
// echo when in is a terminal.
func NewTerminal(in io.Reader, out io.Writer) Terminal {
	t := &lineTerminal{in: in, out: out}
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		t.fd = int(f.Fd())
		t.tty = true
	}
	return t
}

type lineTerminal struct {
	in  io.Reader
	out io.Writer
	fd  int
	tty bool
}

func (t *lineTerminal) Say(format string, args ...any) { fmt.Fprintf(t.out, format, args...) }

func (t *lineTerminal) Ask(q string) (string, error) {
	fmt.Fprint(t.out, q)
	return t.line()
}

// line reads one line a byte at a time: a buffered reader would swallow
// what was typed ahead, which a secret read from the descriptor then misses.
func (t *lineTerminal) line() (string, error) {
	var b []byte
	var c [1]byte
	for {
		n, err := t.in.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				return strings.TrimSpace(string(b)), nil
			}
			b = append(b, c[0])
		}
		if errors.Is(err, io.EOF) {
			if len(b) > 0 {
				return strings.TrimSpace(string(b)), nil
			}
			return "", ErrNoInput
		}
		if err != nil {
			return "", fmt.Errorf("read the answer: %w", err)
		}
	}
}

func (t *lineTerminal) AskSecret(q string) (string, error) {
	fmt.Fprint(t.out, q)
	if !t.tty {
		return t.line()
	}
	b, err := term.ReadPassword(t.fd)
	fmt.Fprintln(t.out)
	if err != nil {
		return "", fmt.Errorf("read the answer: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// AskDefault asks with a default, shown in brackets, taken on an empty line.
func AskDefault(t Terminal, q, def string) (string, error) {
	if def != "" {
		q += " [" + def + "]"
	}
	s, err := t.Ask(q + ": ")
	if err != nil || s != "" {
		return s, err
	}
	return def, nil
}

// AskYesNo asks a yes/no question until it gets one.
func AskYesNo(t Terminal, q string, def bool) (bool, error) {
	hint := " [y/N]: "
	if def {
		hint = " [Y/n]: "
	}
	for {
		s, err := t.Ask(q + hint)
		if err != nil {
			return false, err
		}
		switch strings.ToLower(s) {
		case "":
			return def, nil
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
		t.Say("Please answer y or n.\n")
	}
}

// AskList asks for a comma-separated list; "-" clears it.
func AskList(t Terminal, q string, def []string) ([]string, error) {
	s, err := AskDefault(t, q+" (comma-separated, - for none)", strings.Join(def, ", "))
	if err != nil {
		return nil, err
	}
	if s == "-" || s == "" {
		return nil, nil
	}
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out, nil
}

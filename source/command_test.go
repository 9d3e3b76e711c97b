package source

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCommandStream(t *testing.T) {
	for _, tc := range []struct {
		name    string
		argv    []string
		out     string
		wantErr string
	}{
		{"success", []string{"sh", "-c", "printf 'complete dump'"}, "complete dump", ""},
		{"exit code after output", []string{"sh", "-c", "printf partial; echo 'server has gone away' >&2; exit 2"}, "partial", "exit status 2: server has gone away"},
		{"killed", []string{"sh", "-c", "printf partial; kill -9 $$"}, "partial", "signal: killed"},
		{"no output, failure", []string{"sh", "-c", "exit 1"}, "", "exit status 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := StartCommand(context.Background(), tc.argv, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(c)
			if string(got) != tc.out {
				t.Errorf("output %q, want %q", got, tc.out)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("read: %v", err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("read error %v, want one containing %q", err, tc.wantErr)
			}
			// Reading past the end keeps returning the same verdict.
			if _, again := c.Read(make([]byte, 1)); (again == io.EOF) != (tc.wantErr == "") {
				t.Fatalf("second read after end: %v", again)
			}
			if cerr := c.Close(); (cerr == nil) != (tc.wantErr == "") {
				t.Fatalf("close: %v", cerr)
			}
		})
	}
}

func TestCommandNotFound(t *testing.T) {
	_, err := StartCommand(context.Background(), []string{"no-such-dump-tool-xyz"}, nil)
	if err == nil || !strings.Contains(err.Error(), "no-such-dump-tool-xyz") {
		t.Fatalf("got %v", err)
	}
}

// Closing early (the backup failed) stops the command and reports it.
func TestCommandCloseEarly(t *testing.T) {
	c, err := StartCommand(context.Background(), []string{"sh", "-c", "yes"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err == nil {
		t.Fatal("close of a killed command reported success")
	}
}

func TestCommandEnvNotArgv(t *testing.T) {
	c, err := StartCommand(context.Background(), []string{"sh", "-c", `printf "$MYSQL_PWD"`}, []string{"MYSQL_PWD=s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "s3cret" {
		t.Fatalf("got %q %v", got, err)
	}
	if errors.Is(c.Close(), io.EOF) {
		t.Fatal("unexpected EOF from close")
	}
}

//go:build unix

package main

import (
	"bytes"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// ansiEscape matches the terminal control sequences a redraw may use.
var ansiEscape = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// On a terminal, backup draws a live bar on stderr: files and bytes done of
// their totals, the percentage, the rate and the time elapsed and left;
// its last state shows the totals.
func TestProgressBarOnTerminal(t *testing.T) {
	root, _ := makeProgressTree(t)
	c := newCLI(t, t.TempDir())
	c.ok("init")

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(escrowBin, "backup", root)
	cmd.Env = c.env
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // the child holds the terminal now; reads end when it exits
	var screen bytes.Buffer
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(&screen, ptmx) // ends with EIO once the child is gone
		close(copied)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("backup on a terminal: %v\n%s", err, screen.String())
	}
	<-copied

	// Each redraw starts with a carriage return; split into the states shown.
	var states []string
	for _, s := range strings.FieldsFunc(ansiEscape.ReplaceAllString(screen.String(), ""), func(r rune) bool { return r == '\r' || r == '\n' }) {
		if s = strings.TrimSpace(s); s != "" {
			states = append(states, s)
		}
	}
	if len(states) == 0 {
		t.Fatal("nothing was drawn on the terminal")
	}
	// While it runs: "backup 12/40 files  35% |█████     | (56/160 MiB, 80 MiB/s) [0s:1s]".
	running := regexp.MustCompile(`^backup \d+/40 files +(\d+)% \|[█ ]+\| \([\d.]+( [KMG]iB| B)?/160 MiB, [\d.]+ [KMG]iB/s\) \[\d+[hms\d]*:\d+[hms\d]*\]$`)
	sawRunning := false
	for _, s := range states {
		if m := running.FindStringSubmatch(s); m != nil && m[1] != "100" {
			sawRunning = true
		}
	}
	if !sawRunning {
		t.Errorf("no bar with a percentage below 100, bytes of the total, a rate and an ETA; drawn:\n%s", strings.Join(states, "\n"))
	}
	// At the end: every file and byte, the average rate and the time taken.
	final := regexp.MustCompile(`^backup 40/40 files 100% \|█+\| \(160/160 MiB, [\d.]+ [KMG]iB/s\) \[\d+[hms\d]*\]$`)
	if last := states[len(states)-1]; !final.MatchString(last) {
		t.Errorf("last state of the bar %q does not show the totals", last)
	}
	if !strings.Contains(stdout.String(), "snapshot ") {
		t.Errorf("no summary on stdout: %q", stdout.String())
	}
}

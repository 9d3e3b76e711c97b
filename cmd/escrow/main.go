// Command escrow is the backup escrow agent and its command line: it keeps a
// website's files and databases in independent object storage, in a restic
// repository that the hosting provider cannot destroy.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/escrow-backup/escrow/internal/failpoint"
)

// version, commit and date are set at build time with -ldflags
// "-X main.version=... -X main.commit=... -X main.date=..." (goreleaser.yml).
var (
	version = "dev"
	commit  = ""
	date    = ""
)

// gcPercent replaces the collector's default GOGC of 100 unless GOGC is
// set. escrow's big buffers (packs, chunks, ranges) are reused rather than
// reallocated, so what it allocates between collections is small, pointer-
// light garbage: collecting at half the live heap instead of all of it
// costs a few milliseconds of CPU per backup and cuts the peak memory by a
// third (bench/ measures both).
const gcPercent = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	// In main, not run: the limit is the process's, and tests run
	// commands in their own process through run.
	if os.Getenv("GOMEMLIMIT") == "" {
		followLiveHeap() // for the life of the process
	}
	// Crash tests kill escrow at named steps (internal/failpoint); a
	// misspelt step must not pass for one never reached.
	if err := failpoint.Arm(os.Getenv(failpoint.EnvVar)); err != nil {
		fmt.Fprintf(os.Stderr, "escrow: %v\n", err)
		os.Exit(exitUsage)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv: os.Getenv,
	})
	stop()
	os.Exit(code)
}

// env is everything a command takes from its process, so tests can run
// commands in-process with their own streams and variables.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, e env) int {
	if path := e.getenv(memDebugEnv); path != "" {
		d := startMemDebug(path, e.stderr)
		defer d.stop()
	}
	for _, rec := range debugRecorders {
		path := e.getenv(rec.env)
		if path == "" {
			continue
		}
		stop, err := startRecording(path, rec.start, rec.stop)
		if err != nil {
			fmt.Fprintf(e.stderr, "escrow: %s: %v\n", rec.env, err)
			return 1
		}
		defer stop()
	}
	root := newRootCommand(e)
	root.SetArgs(args)
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := exitCode(err)
	fmt.Fprintf(e.stderr, "escrow: %v\n", err)
	return code
}

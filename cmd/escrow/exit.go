package main

import (
	"context"
	"errors"

	"github.com/escrow-backup/escrow/repo"
)

// Exit codes. Scripts and monitoring branch on these, so they never change
// meaning; they follow restic's where both have one.
const (
	exitOK           = 0
	exitFailure      = 1  // anything else
	exitUsage        = 2  // bad flags, arguments or repository address
	exitIncomplete   = 3  // backup saved, but some files could not be read
	exitUnhealthy    = 4  // status: the agent is not running, or a source has a problem
	exitSilent       = 5  // fleet: a host wrote no heartbeat for longer than --stale
	exitNoRepository = 10 // nothing at the repository address
	exitLocked       = 11 // another process holds the repository
	exitWrongPass    = 12 // no key matches the password
	exitInterrupted  = 130
)

// exitNotTamperProof is doctor's: not tamper-proof, or the credentials
// cannot back up.
const exitNotTamperProof = 5

// exitError carries an explicit exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageError marks a mistake in how escrow was called.
func usageError(err error) error { return withCode(exitUsage, err) }

func exitCode(err error) int {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, repo.ErrWrongPassword):
		return exitWrongPass
	case errors.Is(err, repo.ErrLocked):
		return exitLocked
	case errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, errNoRepository):
		return exitNoRepository
	}
	return exitFailure
}

// errNoRepository marks "the address holds no repository" as opposed to an
// object missing inside one.
var errNoRepository = errors.New("no repository")

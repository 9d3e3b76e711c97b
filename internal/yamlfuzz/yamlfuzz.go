// Package yamlfuzz holds what the fuzz targets of escrow's YAML parsers (the
// agent configuration, the setup preseed) share. Only tests import it.
package yamlfuzz

import (
	"fmt"
	"strings"
	"time"
)

// Lines counts lines as YAML does: "\r\n", "\r" and "\n" each end one. A
// problem the parser reports must fall on one of them (or just past the
// last).
func Lines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	return strings.Count(s, "\n") + strings.Count(s, "\r") + 1
}

// HangGuard crashes the process when one input takes longer than any text
// of this size may (Go's fuzzer has no time limit of its own: a hang would
// only stall it); the fuzzer then keeps the input as a failure. Call the
// returned stop once the input is parsed.
func HangGuard(data []byte) (stop func()) {
	t := time.AfterFunc(10*time.Second, func() {
		panic(fmt.Sprintf("parsing %d bytes took more than 10s: %q", len(data), data))
	})
	return func() { t.Stop() }
}

// Unjoin returns the errors joined in err (errors.Join), or err alone.
func Unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

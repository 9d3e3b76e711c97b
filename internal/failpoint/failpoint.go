// Package failpoint lets crash tests kill escrow at a named step of its
// work, to prove that a process dying there leaves the repository valid and
// the next run able to finish. It is for tests only: nothing happens unless
// the environment variable ESCROW_FAILPOINT is set.
//
//	ESCROW_FAILPOINT=STEP[:N]
//
// makes the process send itself SIGKILL at the N-th time (default 1) the
// code passes STEP, one of the Step constants below ("pack-uploaded",
// "dump-mid", ...). The command's main arms it once, with Arm, before
// anything else runs; an unknown step or a bad N is an error naming the
// valid steps, so a typo in a test cannot pass for a step never reached.
//
// A disarmed failpoint costs one atomic load and a branch, so the hits stay
// in the production code paths they test.
package failpoint

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// EnvVar names the variable Arm reads in escrow's main.
const EnvVar = "ESCROW_FAILPOINT"

// Step names a place in the code where a test may kill the process.
type Step string

// The steps, in the order a backup passes them.
const (
	ChunkRead         Step = "chunk-read"          // a chunk of a file was read, before it is stored
	PackSealed        Step = "pack-sealed"         // a pack is complete in memory, before its upload
	PackUploadMid     Step = "pack-upload-mid"     // part of a pack's body has been sent to the store
	PackUploaded      Step = "pack-uploaded"       // the store has a pack no index lists yet
	IndexUploaded     Step = "index-uploaded"      // an index file is stored, no snapshot refers to it yet
	SnapshotUploadMid Step = "snapshot-upload-mid" // part of a snapshot file has been sent
	SnapshotUploaded  Step = "snapshot-uploaded"   // the snapshot is stored, the command has not ended
	StateWrite        Step = "state-write"         // a local state or cache file is written, not yet renamed into place
	DumpMid           Step = "dump-mid"            // another 64 KiB of a database dump stream has been read
)

// Steps lists every step, for messages and for tests that try each.
func Steps() []Step {
	return []Step{ChunkRead, PackSealed, PackUploadMid, PackUploaded, IndexUploaded,
		SnapshotUploadMid, SnapshotUploaded, StateWrite, DumpMid}
}

// point is an armed failpoint.
type point struct {
	step Step
	n    int64
	hits atomic.Int64
}

// armed is the process's one failpoint, nil when disarmed. It is the
// package's only state: the alternative, passing a failpoint through every
// layer a step lives in, would put test plumbing in every signature.
var armed atomic.Pointer[point]

// Parse reads a STEP[:N] value.
func Parse(spec string) (Step, int64, error) {
	name, count, hasCount := strings.Cut(strings.TrimSpace(spec), ":")
	step := Step(name)
	known := false
	for _, s := range Steps() {
		known = known || s == step
	}
	if !known {
		return "", 0, fmt.Errorf("%s=%q: unknown step %q; valid steps: %s", EnvVar, spec, name, stepList())
	}
	n := int64(1)
	if hasCount {
		v, err := strconv.ParseInt(count, 10, 64)
		if err != nil || v < 1 {
			return "", 0, fmt.Errorf("%s=%q: the count after the colon must be a whole number of at least 1", EnvVar, spec)
		}
		n = v
	}
	return step, n, nil
}

func stepList() string {
	var names []string
	for _, s := range Steps() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// Arm sets the process's failpoint from spec (the value of EnvVar); an
// empty spec disarms. Call it once, at the start of main.
func Arm(spec string) error {
	if spec == "" {
		armed.Store(nil)
		return nil
	}
	step, n, err := Parse(spec)
	if err != nil {
		return err
	}
	armed.Store(&point{step: step, n: n})
	return nil
}

// Armed reports whether step is the armed failpoint, for code that must
// prepare a hit (wrap a request body, say) and should not pay for it
// otherwise.
func Armed(step Step) bool {
	p := armed.Load()
	return p != nil && p.step == step
}

// Hit counts a pass through step and kills the process at the armed count.
func Hit(step Step) {
	p := armed.Load()
	if p == nil || p.step != step {
		return
	}
	if p.hits.Add(1) == p.n {
		kill(step)
	}
}

// kill ends the process the way a crash or the OOM killer does: no deferred
// calls, no lock release, no flushing.
func kill(step Step) {
	fmt.Fprintf(os.Stderr, "escrow: failpoint %s: killing the process\n", step)
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Kill()
	}
	// Never go on past the step, should the signal take a moment. (Not
	// select{}: the runtime could call that a deadlock and exit first.)
	for {
		time.Sleep(time.Hour)
	}
}

// HalfReader returns r, or, when step is armed, a reader that passes step
// once more than half of size bytes have been read through it: wrapped
// around a request body, that is a kill with part of the body sent.
func HalfReader(step Step, r io.Reader, size int64) io.Reader {
	if !Armed(step) {
		return r
	}
	return &halfReader{r: r, step: step, half: size / 2}
}

type halfReader struct {
	r    io.Reader
	step Step
	half int64
	read int64
}

func (h *halfReader) Read(p []byte) (int, error) {
	// Hit on the read after the one that crossed the half, so that what
	// the caller got before has gone out.
	if h.read > h.half {
		Hit(h.step)
		h.half = 1<<63 - 1
	}
	n, err := h.r.Read(p)
	h.read += int64(n)
	return n, err
}

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"time"
)

// memDebugEnv names a file: when set, escrow writes a heap profile there each
// time the live heap (as of the last collection) reaches a new peak, and
// prints its memory figures to stderr on exit. For finding what holds memory
// (go tool pprof -sample_index=inuse_space FILE); not a user feature.
const memDebugEnv = "ESCROW_DEBUG_MEMPROFILE"

// cpuDebugEnv names a file: when set, escrow writes a CPU profile of the
// whole command there (go tool pprof FILE). For finding where a slow
// command spends its time; not a user feature.
const cpuDebugEnv = "ESCROW_DEBUG_CPUPROFILE"

// traceDebugEnv names a file: when set, escrow writes an execution trace
// of the whole command there (go tool trace FILE). For finding where a
// command's wall time goes (waiting on a pipe, the store, the collector)
// when the CPU profile shows nothing to spend it; not a user feature.
const traceDebugEnv = "ESCROW_DEBUG_TRACE"

// debugRecorders are the whole-command recordings an environment variable
// turns on: each starts writing to a file and stops when the command ends.
var debugRecorders = []struct {
	env   string
	start func(io.Writer) error
	stop  func()
}{
	{cpuDebugEnv, pprof.StartCPUProfile, pprof.StopCPUProfile},
	{traceDebugEnv, trace.Start, trace.Stop},
}

// startRecording creates path and starts a recorder writing to it; the
// function it returns stops the recorder and closes the file.
func startRecording(path string, start func(io.Writer) error, stop func()) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		stop()
		f.Close()
	}, nil
}

// memDebug samples the runtime's memory metrics until stop is called.
type memDebug struct {
	path   string
	stderr io.Writer
	done   chan struct{}
	exited chan struct{}

	peakLive, peakHeap, peakMapped uint64 // bytes
	atPeak                         string
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func startMemDebug(path string, stderr io.Writer) *memDebug {
	d := &memDebug{path: path, stderr: stderr, done: make(chan struct{}), exited: make(chan struct{})}
	go d.run()
	return d
}

var memDebugMetrics = []string{
	"/gc/heap/live:bytes",
	"/memory/classes/heap/objects:bytes",
	"/gc/cycles/total:gc-cycles",
	"/cpu/classes/gc/total:cpu-seconds",
	"/memory/classes/total:bytes",
	"/memory/classes/heap/released:bytes",
	"/memory/classes/heap/free:bytes",
	"/memory/classes/heap/unused:bytes",
}

func (d *memDebug) run() {
	defer close(d.exited)
	samples := make([]metrics.Sample, len(memDebugMetrics))
	for i, name := range memDebugMetrics {
		samples[i].Name = name
	}
	var profileAt uint64 // GC cycle after which to write the profile; 0: none due
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		metrics.Read(samples)
		cycles := samples[2].Value.Uint64()
		if live := samples[0].Value.Uint64(); live > d.peakLive+d.peakLive/20 {
			d.peakLive = live
			// The heap profile lags by up to two collections.
			profileAt = cycles + 2
		}
		if profileAt != 0 && cycles >= profileAt {
			d.writeProfile(d.path)
			profileAt = 0
		}
		d.peakHeap = max(d.peakHeap, samples[1].Value.Uint64())
		// Mapped and not returned to the OS: roughly what is resident.
		if m := samples[4].Value.Uint64() - samples[5].Value.Uint64(); m > d.peakMapped {
			d.peakMapped = m
			d.atPeak = fmt.Sprintf("objects %.1f MiB, free %.1f MiB, unused %.1f MiB",
				mib(samples[1].Value.Uint64()), mib(samples[6].Value.Uint64()), mib(samples[7].Value.Uint64()))
		}
		select {
		case <-d.done:
			if profileAt != 0 {
				d.writeProfile(d.path)
			}
			d.writeProfile(d.path + ".exit") // for alloc_space: all allocations
			fmt.Fprintf(d.stderr, "memdebug: peak live heap %.1f MiB, peak heap objects %.1f MiB, peak RSS %s, %d GCs, %.2f s GC CPU; peak mapped %.1f MiB (%s); memory limit at exit %.1f MiB\n",
				mib(d.peakLive), mib(d.peakHeap), peakRSS(),
				samples[2].Value.Uint64(), samples[3].Value.Float64(), mib(d.peakMapped), d.atPeak,
				mib(uint64(debug.SetMemoryLimit(-1))))
			return
		case <-t.C:
		}
	}
}

func (d *memDebug) writeProfile(path string) {
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(d.stderr, "memdebug: %v\n", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		fmt.Fprintf(d.stderr, "memdebug: %v\n", err)
	}
}

func (d *memDebug) stop() {
	close(d.done)
	<-d.exited
}

// peakRSS reads the process's peak resident set size (Linux only).
func peakRSS() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

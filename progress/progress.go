// Package progress shows how far a long command has come: a live bar on a
// terminal, a plain line every few seconds in a log or pipe, or restic-style
// JSON status messages for programs.
//
// The engines (backup, restore, check, database dumps) report through their
// own callbacks; the command turns those calls into a Reporter's counters,
// which are atomics, so engine goroutines never wait on the display. One
// goroutine owned by the Reporter renders them on a ticker.
package progress

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Mode says how progress is shown.
type Mode int

const (
	// Off shows nothing (--quiet, or the daemon).
	Off Mode = iota
	// Bar redraws a progress bar in place; for a terminal.
	Bar
	// Lines writes a plain line every Interval; for logs and pipes.
	Lines
	// JSON writes one status message per Interval, one JSON object a
	// line, with restic's field names.
	JSON
)

// Default intervals between Lines and JSON updates.
const (
	DefaultLineInterval = 10 * time.Second
	DefaultJSONInterval = time.Second
	// barInterval is how often the bar is redrawn.
	barInterval = 200 * time.Millisecond
)

// Names are the JSON field names of the counters, so each command's status
// messages match those of the restic command it mirrors.
type Names struct {
	FilesDone, TotalFiles, BytesDone, TotalBytes string
}

// BackupNames returns the field names of `restic backup --json` status
// messages.
func BackupNames() Names {
	return Names{FilesDone: "files_done", TotalFiles: "total_files", BytesDone: "bytes_done", TotalBytes: "total_bytes"}
}

// Options configure a Reporter.
type Options struct {
	Mode Mode
	// Out receives the bar or the lines (stderr) or the JSON (stdout).
	Out io.Writer
	// Action names what is done, e.g. "backup", "restore"; it starts the
	// bar and the plain lines.
	Action string
	// Unit names what the file counter counts (default "files").
	Unit string
	// Interval between Lines and JSON updates; 0 takes the default.
	Interval time.Duration
	// Names of the JSON fields; the zero value takes restic backup's.
	Names Names
	// Unsized says the total stays unknown until the end (a stream, a
	// dump): the bar then shows the bytes and the rate without a percentage.
	Unsized bool
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Reporter holds the counters of one command and renders them until Finish
// or Abort. Its methods are safe for concurrent use; a nil Reporter does
// nothing, so callers need not check for quiet mode.
type Reporter struct {
	opts  Options
	start time.Time

	filesDone, bytesDone   atomic.Uint64
	filesTotal, bytesTotal atomic.Uint64
	final                  atomic.Bool // totals will not grow any more
	errors                 atomic.Uint64
	action                 atomic.Pointer[string]

	r       renderer
	stop    chan struct{}
	stopped sync.WaitGroup
	once    sync.Once
}

// renderer draws a Snapshot; draw is called from the Reporter's goroutine
// only, end once after the goroutine has stopped.
type renderer interface {
	draw(s Snapshot)
	end(s Snapshot, ok bool)
}

// New starts a Reporter; call Finish or Abort to stop it.
func New(o Options) *Reporter {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Unit == "" {
		o.Unit = "files"
	}
	if o.Names == (Names{}) {
		o.Names = BackupNames()
	}
	rp := &Reporter{opts: o, start: o.Now(), stop: make(chan struct{})}
	rp.action.Store(&o.Action)
	interval := o.Interval
	switch o.Mode {
	case Bar:
		rp.r = newBar(o)
		interval = barInterval
	case Lines:
		rp.r = &lineRenderer{out: o.Out, unit: o.Unit}
		if interval <= 0 {
			interval = DefaultLineInterval
		}
	case JSON:
		rp.r = &jsonRenderer{out: o.Out, names: o.Names}
		if interval <= 0 {
			interval = DefaultJSONInterval
		}
	default:
		return rp
	}
	rp.stopped.Add(1)
	go rp.loop(interval)
	return rp
}

func (rp *Reporter) loop(interval time.Duration) {
	defer rp.stopped.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-rp.stop:
			return
		case <-t.C:
			rp.r.draw(rp.Snapshot())
		}
	}
}

// SetAction changes the label shown before the counters, for a command
// with several stages.
func (rp *Reporter) SetAction(a string) {
	if rp != nil {
		rp.action.Store(&a)
	}
}

// Total sets the totals; final says they will not change any more (the
// count is complete), which an ETA needs. A scan running alongside the work
// calls it with the totals so far, and final at its end.
func (rp *Reporter) Total(files, bytes uint64, final bool) {
	if rp != nil {
		rp.filesTotal.Store(files)
		rp.bytesTotal.Store(bytes)
		if final {
			rp.final.Store(true)
		}
	}
}

// Done records the work done so far. Engines call back from several
// goroutines with copies taken at different moments, so a count only ever
// grows: a late, smaller copy is ignored.
func (rp *Reporter) Done(files, bytes uint64) {
	if rp != nil {
		storeMax(&rp.filesDone, files)
		storeMax(&rp.bytesDone, bytes)
	}
}

// AddDone adds to the work done, for readers that count as bytes flow.
func (rp *Reporter) AddDone(files, bytes uint64) {
	if rp != nil {
		rp.filesDone.Add(files)
		rp.bytesDone.Add(bytes)
	}
}

// SetErrors records how many items failed so far (a count that grows).
func (rp *Reporter) SetErrors(n uint64) {
	if rp != nil {
		storeMax(&rp.errors, n)
	}
}

func storeMax(v *atomic.Uint64, n uint64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// Finish stops the display after a success: the bar is drawn full with the
// final counts (which become the totals); lines and JSON end silently, as
// the command's summary follows.
func (rp *Reporter) Finish() { rp.end(true) }

// Abort stops the display after a failure, leaving the bar where it was.
func (rp *Reporter) Abort() { rp.end(false) }

func (rp *Reporter) end(ok bool) {
	if rp == nil {
		return
	}
	rp.once.Do(func() {
		if rp.r == nil {
			return
		}
		close(rp.stop)
		rp.stopped.Wait()
		rp.r.end(rp.Snapshot(), ok)
	})
}

// Snapshot is the state of the counters at one moment, with what follows
// from them.
type Snapshot struct {
	Action                string
	Elapsed               time.Duration
	FilesDone, FilesTotal uint64
	BytesDone, BytesTotal uint64
	Errors                uint64
	// TotalsFinal is set once the totals will not grow.
	TotalsFinal bool
}

// Snapshot reads the counters.
func (rp *Reporter) Snapshot() Snapshot {
	return Snapshot{
		Action:      *rp.action.Load(),
		Elapsed:     rp.opts.Now().Sub(rp.start),
		FilesDone:   rp.filesDone.Load(),
		FilesTotal:  rp.filesTotal.Load(),
		BytesDone:   rp.bytesDone.Load(),
		BytesTotal:  rp.bytesTotal.Load(),
		Errors:      rp.errors.Load(),
		TotalsFinal: rp.final.Load(),
	}
}

// Fraction is the share done, by bytes where there are any, else by files;
// 0 when there is no total.
func (s Snapshot) Fraction() float64 {
	var f float64
	switch {
	case s.BytesTotal > 0:
		f = float64(s.BytesDone) / float64(s.BytesTotal)
	case s.FilesTotal > 0:
		f = float64(s.FilesDone) / float64(s.FilesTotal)
	}
	return min(f, 1)
}

// Rate is the average bytes per second since the start.
func (s Snapshot) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.BytesDone) / s.Elapsed.Seconds()
}

// Remaining estimates the time left from the average rate so far; ok is
// false while the totals are still being counted or nothing is done yet.
func (s Snapshot) Remaining() (d time.Duration, ok bool) {
	f := s.Fraction()
	if !s.TotalsFinal || f <= 0 {
		return 0, false
	}
	left := s.Elapsed.Seconds() * (1 - f) / f
	return time.Duration(left * float64(time.Second)).Round(time.Second), true
}

// FormatBytes prints a size in binary units.
func FormatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

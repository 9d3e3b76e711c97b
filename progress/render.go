package progress

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
)

// barRenderer draws a terminal bar with github.com/schollz/progressbar,
// which already brings the rolling rate, the ETA and the redraw in place.
type barRenderer struct {
	bar     *progressbar.ProgressBar
	out     io.Writer
	unit    string
	unsized bool
	max     int64
	drawn   bool
}

func newBar(o Options) *barRenderer {
	b := &barRenderer{out: o.Out, unit: o.Unit, unsized: o.Unsized, max: 1}
	if o.Unsized {
		b.max = -1
	}
	b.bar = progressbar.NewOptions64(b.max,
		progressbar.OptionSetWriter(o.Out),
		progressbar.OptionSetDescription(o.Action),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(25),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		// The Reporter's ticker paces the redraws; a spinner goroutine of
		// the bar's own would outlive an aborted command.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	// Start the bar's clocks now: started by its first redraw instead,
	// its first rate sample divides by almost no time.
	b.bar.StartWithoutRender()
	return b
}

func (b *barRenderer) describe(s Snapshot) string {
	if s.FilesTotal > 0 && !b.unsized {
		return fmt.Sprintf("%s %d/%d %s", s.Action, s.FilesDone, s.FilesTotal, b.unit)
	}
	return fmt.Sprintf("%s %d %s", s.Action, s.FilesDone, b.unit)
}

func (b *barRenderer) draw(s Snapshot) {
	b.drawn = true
	b.bar.Describe(b.describe(s))
	if !b.unsized {
		// The bar stops for good once it reaches its maximum, so while the
		// scan still counts, or a file grew since it was counted, the
		// maximum stays just above what is done.
		m := int64(s.BytesTotal)
		if !s.TotalsFinal || s.BytesDone >= s.BytesTotal {
			m = max(m, int64(s.BytesDone)+1)
		}
		m = max(m, 1)
		if m != b.max {
			b.max = m
			b.bar.ChangeMax64(m)
		}
	}
	_ = b.bar.Set64(int64(s.BytesDone))
}

func (b *barRenderer) end(s Snapshot, ok bool) {
	if !ok || s.BytesDone == 0 {
		// Keep the last state on screen; an empty bar (nothing to read)
		// cannot be drawn full.
		_ = b.bar.Exit()
		if b.drawn {
			fmt.Fprintln(b.out)
		}
		return
	}
	// What was done is the total: draw it full, with the final counts.
	s.FilesTotal = s.FilesDone
	b.bar.Describe(b.describe(s))
	b.bar.ChangeMax64(int64(s.BytesDone))
	_ = b.bar.Finish()
	fmt.Fprintln(b.out)
}

// lineRenderer writes a plain line per tick, for logs: no control
// characters, everything on one line.
type lineRenderer struct {
	out  io.Writer
	unit string
}

func (l *lineRenderer) draw(s Snapshot) {
	fmt.Fprintln(l.out, Line(s, l.unit))
}

func (l *lineRenderer) end(Snapshot, bool) {}

// Line describes s in one plain line, e.g.
// "backup: 35.2% done, 1.2 GiB of 3.4 GiB, 120 of 456 files, 12.3 MiB/s, elapsed 1m0s, ETA 1m50s".
func Line(s Snapshot, unit string) string {
	var b strings.Builder
	b.WriteString(s.Action + ":")
	if s.BytesTotal > 0 || s.FilesTotal > 0 {
		fmt.Fprintf(&b, " %.1f%% done,", 100*s.Fraction())
	}
	b.WriteString(" " + FormatBytes(s.BytesDone))
	if s.BytesTotal > 0 {
		b.WriteString(" of " + FormatBytes(s.BytesTotal))
	}
	fmt.Fprintf(&b, ", %d", s.FilesDone)
	if s.FilesTotal > 0 {
		fmt.Fprintf(&b, " of %d", s.FilesTotal)
	}
	fmt.Fprintf(&b, " %s, %s/s, elapsed %s", unit, FormatBytes(uint64(s.Rate())), s.Elapsed.Round(time.Second))
	if d, ok := s.Remaining(); ok {
		fmt.Fprintf(&b, ", ETA %s", d)
	}
	if s.Errors > 0 {
		fmt.Fprintf(&b, ", %d errors", s.Errors)
	}
	return b.String()
}

// jsonRenderer writes restic's status messages, one object a line.
type jsonRenderer struct {
	out   io.Writer
	names Names
}

func (j *jsonRenderer) draw(s Snapshot) {
	_, _ = j.out.Write(StatusJSON(s, j.names))
}

func (j *jsonRenderer) end(Snapshot, bool) {}

// StatusJSON encodes s as a restic status message with the given field
// names, in restic's field order, ending in a newline. As in restic,
// seconds_remaining is left out while it is unknown and the totals while
// they are zero.
func StatusJSON(s Snapshot, n Names) []byte {
	var b bytes.Buffer
	field := func(k string, v any) {
		if b.Len() == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		kj, _ := json.Marshal(k)
		vj, _ := json.Marshal(v)
		b.Write(kj)
		b.WriteByte(':')
		b.Write(vj)
	}
	field("message_type", "status")
	field("seconds_elapsed", uint64(s.Elapsed.Seconds()))
	if d, ok := s.Remaining(); ok {
		field("seconds_remaining", uint64(d.Seconds()))
	}
	field("percent_done", math.Round(s.Fraction()*1e4)/1e4)
	if s.FilesTotal > 0 {
		field(n.TotalFiles, s.FilesTotal)
	}
	field(n.FilesDone, s.FilesDone)
	if s.BytesTotal > 0 {
		field(n.TotalBytes, s.BytesTotal)
	}
	field(n.BytesDone, s.BytesDone)
	if s.Errors > 0 {
		field("error_count", s.Errors)
	}
	b.WriteString("}\n")
	return b.Bytes()
}

package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is written by the Reporter's goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// waitFor polls until out holds want, or fails after a few seconds.
func waitFor(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(out.String(), want) {
			return
		}
	}
	t.Fatalf("waited for %q; output:\n%s", want, out.String())
}

func TestLinesAndJSON(t *testing.T) {
	tests := []struct {
		mode Mode
		want string
	}{
		{Lines, "backup: 50.0% done, 500 B of 1000 B, 5 of 10 files, 50 B/s, elapsed 10s, ETA 10s, 1 errors\n"},
		{JSON, `{"message_type":"status","seconds_elapsed":10,"seconds_remaining":10,"percent_done":0.5,"total_files":10,"files_done":5,"total_bytes":1000,"bytes_done":500,"error_count":1}` + "\n"},
	}
	for _, tt := range tests {
		var out syncBuffer
		c := &clock{now: time.Unix(1e9, 0)}
		rp := New(Options{Mode: tt.mode, Out: &out, Action: "backup", Interval: 5 * time.Millisecond, Now: c.Now})
		rp.Total(10, 1000, true)
		rp.Done(5, 500)
		rp.Done(3, 100) // a late, older copy: ignored
		rp.SetErrors(1)
		c.add(10 * time.Second)
		waitFor(t, &out, tt.want)
		rp.Finish()
		after := out.String()
		time.Sleep(20 * time.Millisecond)
		if out.String() != after {
			t.Errorf("mode %d: output after Finish", tt.mode)
		}
		if lines := strings.Split(strings.TrimSuffix(after, "\n"), "\n"); lines[0]+"\n" != tt.want {
			t.Errorf("mode %d: first line %q, want %q", tt.mode, lines[0], tt.want)
		}
	}
}

// While a scan still counts, there is no ETA, and a share done beyond the
// total (a file grew) shows as 100%, not more.
func TestRemaining(t *testing.T) {
	s := Snapshot{Action: "backup", Elapsed: 4 * time.Second, FilesDone: 1, BytesDone: 100, FilesTotal: 4, BytesTotal: 400}
	if _, ok := s.Remaining(); ok {
		t.Error("an ETA while the totals are still counted")
	}
	s.TotalsFinal = true
	if d, ok := s.Remaining(); !ok || d != 12*time.Second {
		t.Errorf("ETA %v, %v; want 12s", d, ok)
	}
	s.BytesDone = 500
	if f := s.Fraction(); f != 1 {
		t.Errorf("fraction %v beyond the total, want 1", f)
	}
	s = Snapshot{Action: "dump", Elapsed: 2 * time.Second, BytesDone: 3 << 20, FilesDone: 1}
	if got, want := Line(s, "dumps"), "dump: 3.0 MiB, 1 dumps, 1.5 MiB/s, elapsed 2s"; got != want {
		t.Errorf("line without totals %q, want %q", got, want)
	}
}

// The bar ends full with the final counts, whatever the scan had counted.
func TestBarEndsWithTotals(t *testing.T) {
	var out syncBuffer
	rp := New(Options{Mode: Bar, Out: &out, Action: "restore"})
	rp.Total(3, 3000, true)
	rp.Done(1, 1000)
	waitFor(t, &out, "restore 1/3 files")
	rp.Done(3, 3500) // a file grew since it was counted
	rp.Finish()
	final := out.String()[strings.LastIndex(out.String(), "\r")+1:]
	if !strings.Contains(final, "restore 3/3 files 100%") || !strings.Contains(final, "3.4/3.4 KiB") || !strings.HasSuffix(final, "\n") {
		t.Errorf("final bar %q: want 3/3 files, 100%% and 3.4/3.4 KiB", final)
	}

	// An aborted bar keeps its last state.
	out = syncBuffer{}
	rp = New(Options{Mode: Bar, Out: &out, Action: "restore"})
	rp.Total(3, 3000, true)
	rp.Done(1, 1000)
	waitFor(t, &out, "restore 1/3 files")
	rp.Abort()
	if strings.Contains(out.String(), "100%") {
		t.Errorf("aborted bar drawn full: %q", out.String())
	}
}

func TestNilAndOff(t *testing.T) {
	var rp *Reporter
	rp.Total(1, 1, true)
	rp.Done(1, 1)
	rp.AddDone(1, 1)
	rp.SetErrors(1)
	rp.SetAction("x")
	rp.Finish()
	rp.Abort()

	rp = New(Options{Mode: Off})
	rp.AddDone(2, 20)
	rp.AddDone(1, 10)
	if s := rp.Snapshot(); s.FilesDone != 3 || s.BytesDone != 30 {
		t.Errorf("counts %+v, want 3 files, 30 bytes", s)
	}
	rp.Finish()
	rp.Finish() // twice is fine
}

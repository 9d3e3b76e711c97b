package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// memBackend is an in-memory Backend whose operations fail as its fault
// function decides.
type memBackend struct {
	mu      sync.Mutex
	objects map[Handle][]byte
	calls   map[string]int
	// fault is asked before each operation; a non-nil error is returned
	// instead of doing it. n counts calls of op, from 1.
	fault func(op string, n int) error
	// cutAfter, if >0, makes Load readers fail after that many bytes for
	// the first cutTimes loads.
	cutAfter, cutTimes int
	// listFailAfter, if >0, makes List fail after calling fn that many
	// times.
	listFailAfter int
}

func newMem() *memBackend {
	return &memBackend{objects: map[Handle][]byte{}, calls: map[string]int{}}
}

var errTransient = errors.New("connection reset by peer")

func (m *memBackend) enter(op string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls[op]++
	if m.fault != nil {
		return m.fault(op, m.calls[op])
	}
	return nil
}

func (m *memBackend) count(op string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls[op]
}

func (m *memBackend) Location() string { return "mem:" }
func (m *memBackend) Close() error     { return nil }

func (m *memBackend) Save(ctx context.Context, h Handle, data []byte) error {
	if err := m.enter("save"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objects[h] = bytes.Clone(data)
	return nil
}

func (m *memBackend) Load(ctx context.Context, h Handle, offset, length int64) (io.ReadCloser, error) {
	if err := m.enter("load"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[h]
	if !ok {
		return nil, fmt.Errorf("load %s: %w", h, ErrNotFound)
	}
	if offset > int64(len(data)) || length > int64(len(data))-offset {
		return nil, fmt.Errorf("load %s: %w: range beyond end", h, ErrPermanent)
	}
	data = data[offset:]
	if length > 0 {
		data = data[:length]
	}
	var rd io.Reader = bytes.NewReader(data)
	if m.cutTimes > 0 {
		m.cutTimes--
		rd = io.MultiReader(io.LimitReader(rd, int64(m.cutAfter)), errReader{errTransient})
	}
	return io.NopCloser(rd), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func (m *memBackend) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	if err := m.enter("stat"); err != nil {
		return FileInfo{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	data, ok := m.objects[h]
	if !ok {
		return FileInfo{}, fmt.Errorf("stat %s: %w", h, ErrNotFound)
	}
	return FileInfo{Name: h.Name, Size: int64(len(data))}, nil
}

func (m *memBackend) List(ctx context.Context, t FileType, fn func(FileInfo) error) error {
	if err := m.enter("list"); err != nil {
		return err
	}
	m.mu.Lock()
	var infos []FileInfo
	for h, data := range m.objects {
		if h.Type == t {
			infos = append(infos, FileInfo{Name: h.Name, Size: int64(len(data))})
		}
	}
	failAfter := m.listFailAfter
	m.mu.Unlock()
	slices.SortFunc(infos, func(a, b FileInfo) int { return strings.Compare(a.Name, b.Name) })
	for i, fi := range infos {
		if failAfter > 0 && i == failAfter {
			return fmt.Errorf("list %s: %w", t, errTransient)
		}
		if err := fn(fi); err != nil {
			return fmt.Errorf("list %s: %w", t, err)
		}
	}
	return nil
}

func (m *memBackend) Remove(ctx context.Context, h Handle) error {
	if err := m.enter("remove"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[h]; !ok {
		return fmt.Errorf("remove %s: %w", h, ErrNotFound)
	}
	delete(m.objects, h)
	return nil
}

// failFirst makes the first n calls of op fail with err.
func failFirst(op string, n int, err error) func(string, int) error {
	return func(o string, call int) error {
		if o == op && call <= n {
			return err
		}
		return nil
	}
}

// fakeClock is a clock that only Sleep advances.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return ctx.Err()
}

// testOptions uses the fake clock and no jitter, so waits are exact.
func testOptions(c *fakeClock, logger *slog.Logger) RetryOptions {
	return RetryOptions{
		Now:    c.Now,
		Sleep:  c.Sleep,
		Jitter: func(d time.Duration) time.Duration { return d },
		Logger: logger,
	}
}

var (
	pack = Handle{Type: PackFile, Name: "abcdef0123"}
	ctx  = context.Background()
)

func TestRetryRecovers(t *testing.T) {
	tests := []struct {
		op  string
		run func(b Backend) error
	}{
		{"save", func(b Backend) error { return b.Save(ctx, pack, []byte("data")) }},
		{"load", func(b Backend) error {
			rd, err := b.Load(ctx, pack, 0, 0)
			if err != nil {
				return err
			}
			data, err := io.ReadAll(rd)
			if err == nil && string(data) != "data" {
				err = fmt.Errorf("loaded %q", data)
			}
			return err
		}},
		{"stat", func(b Backend) error { _, err := b.Stat(ctx, pack); return err }},
		{"list", func(b Backend) error { return b.List(ctx, PackFile, func(FileInfo) error { return nil }) }},
		{"remove", func(b Backend) error { return b.Remove(ctx, pack) }},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			m := newMem()
			m.objects[pack] = []byte("data")
			m.fault = failFirst(tt.op, 3, errTransient)
			clock := &fakeClock{}
			if err := tt.run(WithRetry(m, testOptions(clock, nil))); err != nil {
				t.Fatal(err)
			}
			if got := m.count(tt.op); got != 4 {
				t.Errorf("%d calls, want 4", got)
			}
			want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second}
			if !slices.Equal(clock.sleeps, want) {
				t.Errorf("slept %v, want %v", clock.sleeps, want)
			}
		})
	}
}

func TestRetryBackoffCapped(t *testing.T) {
	m := newMem()
	m.fault = failFirst("save", 9, errTransient)
	clock := &fakeClock{}
	opts := testOptions(clock, nil)
	opts.InitialInterval, opts.MaxInterval = time.Second, 5*time.Second
	if err := WithRetry(m, opts).Save(ctx, pack, nil); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1, 2, 4, 5, 5, 5, 5, 5, 5}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(clock.sleeps, want) {
		t.Errorf("slept %v, want %v", clock.sleeps, want)
	}
}

func TestRetryDoesNotRetryPermanent(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("access denied: %w", ErrPermanent),
		fmt.Errorf("stat x: %w", ErrNotFound),
		context.Canceled,
		fmt.Errorf("x: %w", context.DeadlineExceeded),
	} {
		t.Run(err.Error(), func(t *testing.T) {
			m := newMem()
			m.fault = failFirst("stat", 100, err)
			clock := &fakeClock{}
			_, got := WithRetry(m, testOptions(clock, nil)).Stat(ctx, pack)
			if got != err {
				t.Errorf("got %v, want the backend's error unchanged", got)
			}
			if m.count("stat") != 1 || len(clock.sleeps) != 0 {
				t.Errorf("%d calls and %d sleeps, want 1 and 0", m.count("stat"), len(clock.sleeps))
			}
		})
	}
}

func TestRetryGivesUp(t *testing.T) {
	m := newMem()
	m.fault = failFirst("save", 1000, errTransient)
	clock := &fakeClock{}
	opts := testOptions(clock, nil)
	opts.MaxElapsed = time.Minute
	err := WithRetry(m, opts).Save(ctx, pack, nil)
	if !errors.Is(err, errTransient) {
		t.Fatalf("%v does not wrap the last error", err)
	}
	// 0.5+1+2+4+8+16 = 31.5s slept; the next wait (30s) would pass 60s.
	want := "gave up after 7 attempts over 31.5s: the store at mem: stayed unreachable for the whole retry budget of 1m0s " +
		"(check that it is running and reachable from this host, then run again; escrow's --retry-for flag sets the budget): connection reset by peer"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	if m.count("save") != 7 {
		t.Errorf("%d attempts, want 7", m.count("save"))
	}
	if IsPermanent(err) {
		t.Error("a spent budget is reported as permanent")
	}
}

// TestRetryDefaultBudget rides a store that is down for the default budget's
// worth of attempts on a fake clock: an outage of 15 minutes is ridden out,
// one of 17 minutes ends with the budget in the error. The outage tests in
// cmd/escrow run real outages of seconds to minutes (ESCROW_OUTAGE=15m for
// the full length); this covers the default on every run.
func TestRetryDefaultBudget(t *testing.T) {
	for _, tc := range []struct {
		down    time.Duration
		succeed bool
	}{
		{15 * time.Minute, true},
		{17 * time.Minute, false},
	} {
		t.Run(tc.down.String(), func(t *testing.T) {
			clock := &fakeClock{}
			opts := testOptions(clock, nil)
			opts.MaxElapsed = 0 // the default
			m := newMem()
			start := clock.Now()
			m.fault = func(string, int) error {
				if clock.Now().Sub(start) < tc.down {
					return errTransient
				}
				return nil
			}
			err := WithRetry(m, opts).Save(ctx, pack, []byte("x"))
			switch {
			case tc.succeed && err != nil:
				t.Fatalf("a %s outage was not ridden out: %v", tc.down, err)
			case !tc.succeed && (err == nil || !strings.Contains(err.Error(), "retry budget of 16m0s")):
				t.Fatalf("a %s outage: got %v, want the 16m0s budget spent", tc.down, err)
			}
			slept := clock.Now().Sub(start)
			// The wait between attempts is capped at 30s, so the store is
			// tried again within 30s of coming back.
			if tc.succeed && slept > tc.down+30*time.Second {
				t.Errorf("succeeded %s after the store came back, want at most 30s", slept-tc.down)
			}
			if !tc.succeed && slept > DefaultRetryBudget {
				t.Errorf("slept %s, past the %s budget", slept, DefaultRetryBudget)
			}
			t.Logf("outage %s: %d attempts over %s: %v", tc.down, m.count("save"), slept, err)
		})
	}
}

func TestRetryStopsWhenContextEnds(t *testing.T) {
	m := newMem()
	m.fault = failFirst("save", 1000, errTransient)
	cctx, cancel := context.WithCancel(context.Background())
	opts := RetryOptions{
		Sleep: func(ctx context.Context, d time.Duration) error {
			cancel()
			return ctx.Err()
		},
	}
	err := WithRetry(m, opts).Save(cctx, pack, nil)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, errTransient) {
		t.Errorf("got %v, want context.Canceled and the last error", err)
	}
	if m.count("save") != 1 {
		t.Errorf("%d attempts after cancel, want 1", m.count("save"))
	}

	// A context that ended before the call makes no attempt.
	m2 := newMem()
	if err := WithRetry(m2, RetryOptions{}).Save(cctx, pack, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if m2.count("save") != 0 {
		t.Errorf("%d attempts with an ended context", m2.count("save"))
	}
}

func TestRetryLoadReadsWholeRange(t *testing.T) {
	data := []byte("0123456789abcdefghij")
	tests := []struct {
		name           string
		offset, length int64
		want           string
	}{
		{"whole", 0, 0, string(data)},
		{"range", 5, 10, "56789abcde"},
		{"to end", 15, 0, "fghij"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMem()
			m.objects[pack] = data
			m.cutAfter, m.cutTimes = 3, 2 // reset after 3 bytes, twice
			clock := &fakeClock{}
			rd, err := WithRetry(m, testOptions(clock, nil)).Load(ctx, pack, tt.offset, tt.length)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rd)
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
			if m.count("load") != 3 {
				t.Errorf("%d loads, want 3", m.count("load"))
			}
		})
	}
}

// shortBackend returns fewer bytes than asked for without an error.
type shortBackend struct {
	*memBackend
	short int
}

func (s *shortBackend) Load(ctx context.Context, h Handle, offset, length int64) (io.ReadCloser, error) {
	if s.short > 0 {
		s.short--
		return io.NopCloser(strings.NewReader("ab")), nil
	}
	return s.memBackend.Load(ctx, h, offset, length)
}

func TestRetryLoadShortRead(t *testing.T) {
	m := newMem()
	m.objects[pack] = []byte("0123456789")
	b := &shortBackend{memBackend: m, short: 1}
	clock := &fakeClock{}
	rd, err := WithRetry(b, testOptions(clock, nil)).Load(ctx, pack, 2, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(rd); string(got) != "23456" {
		t.Errorf("got %q", got)
	}
	if len(clock.sleeps) != 1 {
		t.Errorf("%d retries for one short read, want 1", len(clock.sleeps))
	}
}

func TestRetryList(t *testing.T) {
	newFilled := func() *memBackend {
		m := newMem()
		for i := range 5 {
			m.objects[Handle{Type: IndexFile, Name: fmt.Sprintf("%02d", i)}] = nil
		}
		return m
	}

	t.Run("fails after fn was called", func(t *testing.T) {
		m := newFilled()
		m.listFailAfter = 2
		var seen []string
		err := WithRetry(m, testOptions(&fakeClock{}, nil)).List(ctx, IndexFile, func(fi FileInfo) error {
			seen = append(seen, fi.Name)
			return nil
		})
		if !errors.Is(err, errTransient) {
			t.Errorf("got %v, want the listing error", err)
		}
		if IsPermanent(err) {
			t.Errorf("the listing error %v became permanent for the caller", err)
		}
		if m.count("list") != 1 || !slices.Equal(seen, []string{"00", "01"}) {
			t.Errorf("%d listings, fn saw %v; want 1 listing and no repeats", m.count("list"), seen)
		}
	})

	t.Run("fails before fn was called", func(t *testing.T) {
		m := newFilled()
		m.fault = failFirst("list", 2, errTransient)
		got := map[string]bool{}
		err := WithRetry(m, testOptions(&fakeClock{}, nil)).List(ctx, IndexFile, func(fi FileInfo) error {
			got[fi.Name] = true
			return nil
		})
		if err != nil || len(got) != 5 || m.count("list") != 3 {
			t.Errorf("err %v, %d names, %d listings; want nil, 5, 3", err, len(got), m.count("list"))
		}
	})

	t.Run("fn error", func(t *testing.T) {
		m := newFilled()
		stop := errors.New("stop")
		err := WithRetry(m, testOptions(&fakeClock{}, nil)).List(ctx, IndexFile, func(FileInfo) error { return stop })
		if err != stop {
			t.Errorf("got %v, want fn's error itself", err)
		}
		if m.count("list") != 1 {
			t.Errorf("%d listings, want 1", m.count("list"))
		}
	})
}

func TestRetryRemoveAfterLostAnswer(t *testing.T) {
	m := newMem()
	m.objects[pack] = nil
	// The first attempt deletes the object but its answer is lost.
	m.fault = func(op string, n int) error {
		if op == "remove" && n == 1 {
			delete(m.objects, pack) // m.mu is held by enter
			return errTransient
		}
		return nil
	}
	if err := WithRetry(m, testOptions(&fakeClock{}, nil)).Remove(ctx, pack); err != nil {
		t.Errorf("remove: %v, want success", err)
	}
	// Without a failed attempt, not found is reported.
	if err := WithRetry(m, testOptions(&fakeClock{}, nil)).Remove(ctx, pack); !IsNotFound(err) {
		t.Errorf("remove of a missing object: %v, want ErrNotFound", err)
	}
}

func TestRetryLogs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := newMem()
	m.fault = failFirst("save", 2, errTransient)
	if err := WithRetry(m, testOptions(&fakeClock{}, logger)).Save(ctx, pack, nil); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		for _, want := range []string{"level=WARN", "save data/abcdef01", "connection reset by peer"} {
			if !strings.Contains(l, want) {
				t.Errorf("log line %q lacks %q", l, want)
			}
		}
	}
}

func TestRetryDefaults(t *testing.T) {
	o := RetryOptions{}.withDefaults()
	if o.MaxElapsed != 16*time.Minute || o.InitialInterval != 500*time.Millisecond || o.MaxInterval != 30*time.Second {
		t.Errorf("defaults %v %v %v", o.MaxElapsed, o.InitialInterval, o.MaxInterval)
	}
	for range 1000 {
		if d := o.Jitter(time.Second); d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("jitter of 1s gave %v", d)
		}
	}
}

// TestRetryPassesThrough checks that a healthy backend's results are
// unchanged by the wrapper.
func TestRetryPassesThrough(t *testing.T) {
	m := newMem()
	b := WithRetry(m, RetryOptions{})
	want := map[string]int64{}
	for i := range 3 {
		h := Handle{Type: SnapshotFile, Name: fmt.Sprint(i)}
		if err := b.Save(ctx, h, make([]byte, i)); err != nil {
			t.Fatal(err)
		}
		want[h.Name] = int64(i)
	}
	got := map[string]int64{}
	if err := b.List(ctx, SnapshotFile, func(fi FileInfo) error { got[fi.Name] = fi.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("listed %v, want %v", got, want)
	}
	if b.Location() != "mem:" || b.Close() != nil {
		t.Error("Location or Close not passed through")
	}
	if _, err := LoadAll(ctx, b, Handle{Type: SnapshotFile, Name: "9"}); !IsNotFound(err) {
		t.Errorf("load missing: %v", err)
	}
}

// TestRetryFunc covers Retry, the policy for operations outside a Backend.
func TestRetryFunc(t *testing.T) {
	clock := &fakeClock{}
	calls := 0
	err := Retry(ctx, testOptions(clock, nil), "mem:", "connect", func() error {
		calls++
		if calls < 3 {
			return errTransient
		}
		return nil
	})
	if err != nil || calls != 3 || len(clock.sleeps) != 2 {
		t.Errorf("err %v after %d calls and %d sleeps; want nil, 3, 2", err, calls, len(clock.sleeps))
	}

	calls = 0
	denied := fmt.Errorf("denied: %w", ErrPermanent)
	err = Retry(ctx, testOptions(&fakeClock{}, nil), "mem:", "connect", func() error { calls++; return denied })
	if err != denied || calls != 1 {
		t.Errorf("permanent error: %v after %d calls; want it unchanged after 1", err, calls)
	}
}

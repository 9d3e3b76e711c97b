package source

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tool's output arrives through a large pipe that escrow reads with
// blocking reads, never through epoll.
func TestStdoutPipe(t *testing.T) {
	c, err := StartCommand(context.Background(), []string{"sh", "-c", "printf ok"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, ok := c.stdout.(*blockingPipe)
	if !ok {
		t.Fatalf("stdout is a %T, want *blockingPipe", c.stdout)
	}
	fd := int(p.r.Fd())
	size, err := unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if size < pipeSize {
		t.Errorf("pipe holds %d bytes, want %d", size, pipeSize)
	}
	if p.pace.capacity != size {
		t.Errorf("pacer assumes %d bytes, the pipe holds %d", p.pace.capacity, size)
	}
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK != 0 {
		t.Error("read end is non-blocking, so Go polls it and every write wakes escrow")
	}
	if got, err := io.ReadAll(c); err != nil || string(got) != "ok" {
		t.Fatalf("got %q, %v", got, err)
	}
}

// A blocking read ends only when every writer is gone, so cancelling must
// kill the tool's children that hold the pipe too, not only the tool.
func TestCommandCancelKillsGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := StartCommand(ctx, []string{"sh", "-c", "sleep 600 & echo started; wait"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if n, err := io.ReadFull(c, buf); err != nil || string(buf[:n]) != "started\n" {
		t.Fatalf("got %q, %v", buf[:n], err)
	}
	cancel()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(c)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("read after cancel: %v, want the tool killed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("read still blocked 30 s after cancel: the backgrounded child holds the pipe")
	}
	_ = c.Close()
}

// The pacer pauses only while the tool is busy on the CPU, and only when
// the pipe holds what the tool writes during a pause.
func TestPacer(t *testing.T) {
	stat := filepath.Join(t.TempDir(), "schedstat")
	setCPU := func(ns int64) {
		if err := os.WriteFile(stat, []byte(strconv.FormatInt(ns, 10)+" 1234 56\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setCPU(5e9)
	p := pacer{capacity: 1 << 20, stat: stat}
	t0 := time.Now()
	p.start(t0)
	if p.off {
		t.Fatal("pacer off with a readable schedstat")
	}
	paused := func() bool {
		n := p.pauses
		p.wait()
		return p.pauses > n
	}

	// Busy 90 ms of 100, 30 MB/s: pause after a read that emptied the pipe.
	setCPU(5e9 + 90e6)
	p.read(3<<20, true, t0.Add(100*time.Millisecond))
	if !p.busy || p.rate < 29e6 || p.rate > 32e6 {
		t.Fatalf("busy %v rate %.0f after a busy window of 3 MiB", p.busy, p.rate)
	}
	if !paused() {
		t.Error("no pause for a CPU-bound tool after an emptying read")
	}
	p.read(4096, false, t0.Add(150*time.Millisecond))
	if paused() {
		t.Error("paused although the last read filled the buffer (more may be waiting)")
	}

	// Busy 40 ms of 100: the tool waits on its server; never pause.
	setCPU(5e9 + 130e6)
	p.read(4096, true, t0.Add(200*time.Millisecond))
	if p.busy || paused() {
		t.Errorf("busy %v: paused for a tool that waits on its server", p.busy)
	}

	// Busy, but at 2 GB/s the pipe fills within a pause.
	setCPU(5e9 + 230e6)
	p.read(200e6, true, t0.Add(300*time.Millisecond))
	if !p.busy || paused() {
		t.Errorf("busy %v: paused although the tool would fill the pipe", p.busy)
	}

	// The tool is gone: stop pacing.
	if err := os.Remove(stat); err != nil {
		t.Fatal(err)
	}
	p.read(4096, true, t0.Add(400*time.Millisecond))
	if !p.off || paused() {
		t.Error("still pacing after the tool's schedstat went away")
	}

	q := pacer{capacity: 1 << 20, stat: stat}
	q.start(time.Now())
	if !q.off {
		t.Error("pacing without the tool's CPU time")
	}
}

// schedstat's first field is the task's time on the CPU, in nanoseconds.
// It counts one thread (for a dump tool, the one that writes), so the test
// stays on its own.
func TestPacerCPUTime(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	p := pacer{stat: "/proc/thread-self/schedstat"}
	a, ok := p.cpuTime()
	if !ok {
		t.Skip("/proc/self/schedstat unreadable: kernel without CONFIG_SCHED_INFO; the pacer stays off there")
	}
	for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
	}
	b, _ := p.cpuTime()
	if b <= a {
		t.Errorf("CPU time went from %d to %d ns across a busy loop", a, b)
	}
}

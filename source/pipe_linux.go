package source

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for the pipe a dump tool writes into: 1 MiB,
// the most an unprivileged process may set by default
// (/proc/sys/fs/pipe-max-size). The default 64 KiB holds a fraction of a
// millisecond of a dump tool's output, so the tool stalls whenever escrow
// spends a moment cutting or hashing a chunk; a larger pipe lets both run
// at once.
const pipeSize = 1 << 20

// stdoutPipe connects cmd's standard output to a pipe that escrow reads
// with plain blocking reads, and returns its read end.
//
// Go's own pipes are non-blocking and watched by epoll, and a pipe that has
// ever been polled wakes its reader on every write (the kernel's pipe_write
// does so for epoll's sake), where otherwise only a write into an empty pipe
// does. Dump tools write in 4 KiB pieces, so that is one wakeup per 4 KiB,
// paid by the tool. Measured on a 307 MB mariadb-dump into escrow
// (bench/README.md): 0.72 of the dump's speed into /dev/null through Go's
// pipe, 0.80 through this one, 0.84 with the pacing of [pacer] on top.
//
// A blocking read cannot be interrupted by closing the file, only by the
// writers going away; so the tool gets a process group of its own and a
// cancelled context kills the whole group, including any child that
// inherited the pipe (a shell's pipeline), not the tool alone.
func stdoutPipe(cmd *exec.Cmd) (pipeReader, error) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	r := os.NewFile(uintptr(fds[0]), "|0")
	w := os.NewFile(uintptr(fds[1]), "|1")
	capacity, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, pipeSize)
	if err != nil {
		// An older kernel or a lower limit: the pipe stays as it was.
		capacity, _ = unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	}
	cmd.Stdout = w
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.Cancel = func() error { return killGroup(cmd) }
	return &blockingPipe{r: r, w: w, pace: pacer{capacity: capacity}}, nil
}

// killGroup kills the process group that [stdoutPipe] gave the command.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return cmd.Process.Kill()
	}
	return nil
}

type blockingPipe struct {
	r, w *os.File
	pace pacer
}

// started closes escrow's copy of the write end, so that the read end sees
// EOF when the tool is done, and starts watching the tool's CPU time.
func (p *blockingPipe) started(pid int) {
	_ = p.w.Close()
	p.pace.stat = "/proc/" + strconv.Itoa(pid) + "/schedstat"
	p.pace.start(time.Now())
}

func (p *blockingPipe) Read(b []byte) (int, error) {
	p.pace.wait()
	n, err := p.r.Read(b)
	p.pace.read(n, n < len(b), time.Now())
	return n, err
}

func (p *blockingPipe) Close() error {
	_ = p.w.Close()
	return p.r.Close()
}

// pacer lets the pipe fill between reads while the dump tool is busy on
// the CPU all the time.
//
// A reader that keeps up sleeps in read on an empty pipe, and then every
// 4 KiB the tool writes wakes it: a task switch for the tool and one for
// escrow per 4 KiB. When the tool is what sets the pace (mariadb-dump
// formatting rows spends 97% of its time on the CPU), that work comes
// straight out of the dump's throughput; pausing briefly after a read that
// emptied the pipe lets a few hundred KiB gather, read at once, with no
// wakeup for the writes in between (the kernel wakes a reader only for a
// write into an empty pipe). When the tool mostly waits on its server
// (pg_dump: 40% of its time on the CPU; the backend sets the pace), the
// pause only adds idle time: pg_dump ran 12–15% slower with it. So the
// pacer reads the tool's CPU time every window and pauses only while the
// tool was busy at least busyShare of it: mariadb-dump's windows came to
// 0.72–0.96, pg_dump's to 0.29–0.35.
type pacer struct {
	capacity int    // of the pipe, bytes
	stat     string // the tool's /proc/PID/schedstat
	off      bool   // the CPU time could not be read: never pause

	since   time.Time // start of the current window
	cpu     uint64    // the tool's CPU time at since, ns
	bytes   int       // read in the current window
	rate    float64   // bytes per second in the last window
	busy    bool      // the tool was CPU-bound in the last window
	drained bool      // the last read emptied the pipe
	pauses  int       // pauses taken, for tests and debugging
}

const (
	paceWindow = 100 * time.Millisecond
	busyShare  = 0.6
	// pause is what the pacer sleeps; pauseLasts bounds what such a sleep
	// really lasts. Timers overshoot sub-millisecond sleeps: 500 µs came to
	// 1.1–1.4 ms here.
	pause      = 500 * time.Microsecond
	pauseLasts = 4 * pause
)

func (p *pacer) start(now time.Time) {
	cpu, ok := p.cpuTime()
	if !ok {
		p.off = true
		return
	}
	p.since, p.cpu = now, cpu
}

// wait pauses before a read when the last read emptied the pipe and the
// tool is CPU-bound, unless the tool writes fast enough to fill the pipe
// within the pause: then it would wait for escrow instead.
func (p *pacer) wait() {
	if p.off || !p.busy || !p.drained {
		return
	}
	if p.rate*pauseLasts.Seconds() > float64(p.capacity) {
		return
	}
	time.Sleep(pause)
	p.pauses++
}

// read accounts for a read of n bytes and, once a window has passed,
// decides from the tool's CPU time whether to pause in the next one.
func (p *pacer) read(n int, drained bool, now time.Time) {
	if p.off {
		return
	}
	p.drained = drained
	p.bytes += n
	d := now.Sub(p.since)
	if d < paceWindow {
		return
	}
	cpu, ok := p.cpuTime()
	if !ok {
		p.off, p.busy = true, false // the tool has exited, or /proc is hidden
		return
	}
	p.busy = float64(cpu-p.cpu) >= busyShare*float64(d.Nanoseconds())
	p.rate = float64(p.bytes) / d.Seconds()
	p.since, p.cpu, p.bytes = now, cpu, 0
}

// cpuTime reads the first field of /proc/PID/schedstat: the nanoseconds
// the process's main thread has spent on a CPU. The dump tools write from
// their main thread, and that thread's share is the question.
func (p *pacer) cpuTime() (uint64, bool) {
	if p.stat == "" {
		return 0, false
	}
	b, err := os.ReadFile(p.stat)
	if err != nil {
		return 0, false
	}
	f, _, _ := bytes.Cut(b, []byte(" "))
	v, err := strconv.ParseUint(string(f), 10, 64)
	return v, err == nil
}

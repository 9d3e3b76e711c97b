package source

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// pipeSize is the capacity asked for the pipe a dump tool writes into: 1 MiB,
// the most an unprivileged process may set by default
// (/proc/sys/fs/pipe-max-size). The default 64 KiB holds a fraction of a
// millisecond of a dump tool's output, so the tool stalls whenever escrow
// spends a moment cutting or hashing a chunk; a larger pipe lets both run
// at once.
const pipeSize = 1 << 20

// growPipe enlarges the pipe behind r when it is one. It is an optimisation:
// a refusal (an older kernel, a lower limit) leaves the pipe as it was.
func growPipe(r io.Reader) {
	sc, ok := r.(syscall.Conn)
	if !ok {
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
	})
}

package source

import (
	"os/exec"
	"syscall"
)

// KillWithParent makes the kernel send SIGKILL to the child when escrow
// dies, so a dump tool does not outlive a killed escrow and keep holding
// its database (an sqlite3 left running keeps the file busy). It keeps the
// attributes already set on cmd.
//
// The kernel sends the signal when the thread that forked the child exits,
// not the process (golang/go#27505). Go only ends a thread when a goroutine
// exits while it holds runtime.LockOSThread; escrow and its dependencies
// never lock a thread outside tests, so the thread that starts a tool lives
// as long as the process and the signal comes only when escrow dies.
// Locking the thread from Start to Wait instead would pin one thread per
// running tool across goroutines that Start and Wait on different threads.
func KillWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

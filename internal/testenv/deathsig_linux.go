package testenv

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the child when the thread that
// started it exits.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

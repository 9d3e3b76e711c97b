package testenv

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel kill the child when the thread that
// started it exits. It keeps other attributes already set on cmd.
func setDeathSignal(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

//go:build !linux

package testenv

import "os/exec"

// setDeathSignal has no portable equivalent; Main stops the server.
func setDeathSignal(*exec.Cmd) {}

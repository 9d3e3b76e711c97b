package main

import (
	"os"
	"syscall"

	"github.com/kardianos/service"

	"github.com/escrow-backup/escrow/installer"
)

// rescanSignal is never delivered: Windows has no SIGUSR1 or SIGHUP. A
// Windows agent reloads its configuration when the service is restarted.
const rescanSignal = syscall.Signal(-1)

func notifyAgentSignals(chan<- os.Signal) {}

// serviceLog sends the agent's log to installer.LogFile when the service
// control manager runs it: a service has no console for stderr.
func serviceLog(g *globalOptions) (func(), error) {
	if service.Interactive() {
		return func() {}, nil
	}
	f, err := os.OpenFile(installer.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	g.env.stderr = f
	return func() { f.Close() }, nil
}

//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// rescanSignal asks the agent for a full rescan; every other signal that
// notifyAgentSignals asks for (SIGHUP) reloads the configuration.
const rescanSignal = syscall.SIGUSR1

func notifyAgentSignals(c chan<- os.Signal) { signal.Notify(c, syscall.SIGHUP, rescanSignal) }

// serviceLog is where the agent logs: stderr, which systemd sends to the
// journal and the SysV and launchd scripts to the log file.
func serviceLog(g *globalOptions) (func(), error) { return func() {}, nil }

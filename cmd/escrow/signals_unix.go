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

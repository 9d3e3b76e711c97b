package main

import (
	"os"
	"syscall"
)

// rescanSignal is never delivered: Windows has no SIGUSR1 or SIGHUP. A
// Windows agent reloads its configuration when the service is restarted.
const rescanSignal = syscall.Signal(-1)

func notifyAgentSignals(chan<- os.Signal) {}

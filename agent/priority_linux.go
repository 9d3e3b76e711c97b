package agent

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// I/O priority classes and the shift that packs them with a level, from
// linux/ioprio.h.
const (
	ioprioClassShift = 13
	ioprioClassBE    = 2
	ioprioClassIdle  = 3
	ioprioWhoProcess = 1
)

// lowerPriority applies the CPU and I/O priorities to every thread of the
// process. Linux keeps both per thread, and new threads inherit them from
// the thread that creates them, so setting every existing thread covers
// the threads the Go runtime starts later.
func lowerPriority(cpu, io string) error {
	nice := 0
	switch cpu {
	case "", PriorityNormal:
	case PriorityLow:
		nice = 10
	default:
		return fmt.Errorf("cpu priority %q: want low or normal", cpu)
	}
	var ioprio int
	switch io {
	case "", PriorityNormal:
		ioprio = -1
	case PriorityLow:
		ioprio = ioprioClassBE<<ioprioClassShift | 7
	case PriorityIdle:
		ioprio = ioprioClassIdle << ioprioClassShift
	default:
		return fmt.Errorf("io priority %q: want idle, low or normal", io)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("set priority: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if nice != 0 {
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
				return fmt.Errorf("set cpu priority: %w", err)
			}
		}
		if ioprio >= 0 {
			if _, _, e := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(ioprio)); e != 0 {
				return fmt.Errorf("set io priority: %w", e)
			}
		}
	}
	return nil
}

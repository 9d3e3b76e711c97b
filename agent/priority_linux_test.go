package agent

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLowerPriority runs itself in a child process (priorities cannot be
// raised again without privileges) and checks every thread, including
// threads started after the change.
func TestLowerPriority(t *testing.T) {
	if os.Getenv("ESCROW_PRIORITY_CHILD") == "1" {
		if err := lowerPriority(PriorityLow, PriorityIdle); err != nil {
			fmt.Println("lowerPriority:", err)
			os.Exit(1)
		}
		// Force the runtime to start more threads.
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				checkThreads(t)
			}()
		}
		wg.Wait()
		checkThreads(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLowerPriority$", "-test.v")
	cmd.Env = append(os.Environ(), "ESCROW_PRIORITY_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func checkThreads(t *testing.T) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		// The raw getpriority returns 20 - nice.
		prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err == nil && 20-prio != 10 {
			t.Errorf("thread %d: nice %d, want 10", tid, 20-prio)
		}
		r, _, e := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
		if e == 0 && int(r)>>ioprioClassShift != ioprioClassIdle {
			t.Errorf("thread %d: io priority class %d, want idle (%d)", tid, int(r)>>ioprioClassShift, ioprioClassIdle)
		}
	}
}

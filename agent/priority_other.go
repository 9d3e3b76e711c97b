//go:build !linux

package agent

import "fmt"

// lowerPriority is Linux only; elsewhere only "normal" is accepted.
func lowerPriority(cpu, io string) error {
	if (cpu == "" || cpu == PriorityNormal) && (io == "" || io == PriorityNormal) {
		return nil
	}
	return fmt.Errorf("cpu and io priorities other than normal are supported on Linux only")
}

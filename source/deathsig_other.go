//go:build !linux

package source

import "os/exec"

// KillWithParent does nothing here: only Linux lets a child ask to die with
// its parent. A tool left running after escrow is killed ends at its next
// write to its broken output pipe, or when it finishes.
func KillWithParent(*exec.Cmd) {}

//go:build !linux

package source

import (
	"io"
	"os/exec"
)

// stdoutPipe is Go's own pipe elsewhere: the blocking pipe and the pacing
// of pipe_linux.go rest on Linux's pipe and /proc.
func stdoutPipe(cmd *exec.Cmd) (pipeReader, error) {
	r, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	return goPipe{r}, nil
}

type goPipe struct{ io.ReadCloser }

func (goPipe) started(int) {}

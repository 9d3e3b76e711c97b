//go:build !linux

package source

import "io"

// growPipe enlarges a pipe only on Linux (F_SETPIPE_SZ).
func growPipe(io.Reader) {}

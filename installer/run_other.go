//go:build !windows

package installer

import "errors"

func runWindowsService(*Program, Options) error {
	return errors.New("not a Windows service")
}

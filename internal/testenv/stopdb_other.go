//go:build !unix

package testenv

func stopDatabases() {}

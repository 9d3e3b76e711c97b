package main

import (
	"os"
	"path/filepath"
	"sort"
)

func absPaths(args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for _, a := range args {
		p, err := filepath.Abs(a)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

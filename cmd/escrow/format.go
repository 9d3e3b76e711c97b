package main

import (
	"encoding/json"
	"time"

	"github.com/escrow-backup/escrow/progress"
)

func printJSON(g *globalOptions, v any) error {
	enc := json.NewEncoder(g.env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatBytes prints a size in binary units, as the progress display does.
func formatBytes(n uint64) string { return progress.FormatBytes(n) }

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

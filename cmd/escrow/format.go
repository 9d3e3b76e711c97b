package main

import (
	"encoding/json"
	"fmt"
	"time"
)

func printJSON(g *globalOptions, v any) error {
	enc := json.NewEncoder(g.env.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// formatBytes prints a size in binary units.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func formatDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

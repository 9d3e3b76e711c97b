package testenv

import "os"

// Long reports whether the long test tier runs (ESCROW_TIER=long, as make
// soak sets it): the same tests at larger sizes and counts. The quick tier
// runs in CI inside go test ./... and must stay within its time budget.
func Long() bool { return os.Getenv("ESCROW_TIER") == "long" }

package testenv

import "os"

// Long reports whether the long tier runs (ESCROW_TIER=long): the same
// reliability tests as CI's quick tier, at larger counts and with longer
// outages. It is read here only, so every suite agrees on the name.
func Long() bool { return os.Getenv("ESCROW_TIER") == "long" }

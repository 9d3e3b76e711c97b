package installer

// CheckExecutable does nothing on Windows: the service's program is
// expected under Program Files, which only administrators change.
func CheckExecutable(string) error { return nil }

package installer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// restrict gives a directory an access list of SYSTEM and Administrators
// only, inherited by everything in it, in place of what it inherited from
// ProgramData (which lets every user read). The SIDs are used rather than
// the names, which are translated on non-English systems. Files inherit
// from their directory, so they are left alone.
func restrict(p string, fi os.FileInfo, _ os.FileMode) ([]string, error) {
	if !fi.IsDir() {
		return nil, nil
	}
	icacls := filepath.Join(os.Getenv("SystemRoot"), "System32", "icacls.exe")
	out, err := exec.Command(icacls, p, "/inheritance:r",
		"/grant:r", "*S-1-5-18:(OI)(CI)F", "*S-1-5-32-544:(OI)(CI)F").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("restrict access to %s: %w: %s", p, err, out)
	}
	return nil, nil
}

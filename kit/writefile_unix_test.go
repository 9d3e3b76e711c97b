//go:build unix

package kit

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func umask(m int) int { return syscall.Umask(m) }

// WriteFile makes the kit 0600 whatever the umask: the test clears the
// umask, which only unix has.
func TestWriteFile(t *testing.T) {
	old := umask(0)
	defer umask(old)
	name := filepath.Join(t.TempDir(), "kit.txt")
	if err := WriteFile(name, []byte("one"), false); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(name, []byte("two"), false); !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("overwrite without force: %v", err)
	}
	if err := WriteFile(name, []byte("three"), true); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if got, _ := os.ReadFile(name); string(got) != "three" {
		t.Fatalf("content %q", got)
	}
	if ents, _ := os.ReadDir(filepath.Dir(name)); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

package backup

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Excluder decides which paths a backup skips. Patterns follow restic's
// rules: a pattern is matched against the whole absolute path, component by
// component, with shell wildcards in each component and "**" for any number
// of components; a pattern not starting with "/" may match at any depth. A
// matching directory is skipped with everything below it.
type Excluder struct {
	patterns [][]string
}

// NewExcluder compiles patterns. Empty patterns are ignored.
func NewExcluder(patterns []string) (*Excluder, error) {
	e := &Excluder{}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if _, err := filepath.Match(strings.ReplaceAll(p, "**", "*"), ""); err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
		abs := strings.HasPrefix(p, "/")
		parts := strings.Split(strings.Trim(filepath.ToSlash(filepath.Clean(p)), "/"), "/")
		if !abs {
			parts = append([]string{"**"}, parts...)
		}
		e.patterns = append(e.patterns, parts)
	}
	return e, nil
}

// ReadExcludeFile reads one pattern per line; blank lines and lines starting
// with '#' are ignored.
func ReadExcludeFile(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("exclude file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("exclude file %s: %w", name, err)
	}
	return out, nil
}

// Excluded reports whether the absolute path is excluded.
func (e *Excluder) Excluded(path string) bool {
	if e == nil || len(e.patterns) == 0 {
		return false
	}
	comps := strings.Split(strings.Trim(filepath.ToSlash(path), "/"), "/")
	for _, p := range e.patterns {
		if matchParts(p, comps) {
			return true
		}
	}
	return false
}

// matchParts matches pattern components against a prefix of the path's
// components: a pattern naming a directory matches everything inside it.
func matchParts(pat, comps []string) bool {
	if len(pat) == 0 {
		return true
	}
	if pat[0] == "**" {
		for i := 0; i <= len(comps); i++ {
			if matchParts(pat[1:], comps[i:]) {
				return true
			}
		}
		return false
	}
	if len(comps) == 0 {
		return false
	}
	ok, _ := filepath.Match(pat[0], comps[0])
	return ok && matchParts(pat[1:], comps[1:])
}

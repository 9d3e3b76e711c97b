package config

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// problems collects the Errors of one parse or check.
type problems struct {
	file  string
	lines map[string]int // field path → line, shared with the Config
	list  []*Error
	// bad holds the fields already reported, so that later checks do not
	// pile a second message onto the same mistake.
	bad map[string]bool
	// syntax is set when the file could not be read as YAML at all.
	syntax bool
}

// add reports a problem with field; later checks of field are skipped.
func (p *problems) add(line int, field, format string, args ...any) {
	p.note(line, field, format, args...)
	if field != "" {
		p.mark(field)
	}
}

// mark makes later checks skip field.
func (p *problems) mark(field string) {
	if p.bad == nil {
		p.bad = map[string]bool{}
	}
	p.bad[field] = true
}

// note reports a problem without marking field as bad: for a problem inside
// a mapping (an unknown key) that leaves the mapping's other fields usable.
func (p *problems) note(line int, field, format string, args ...any) {
	p.list = append(p.list, &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// at reports a problem on the line where field was given.
func (p *problems) at(field, format string, args ...any) {
	p.add(p.lines[field], field, format, args...)
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	slices.SortStableFunc(p.list, func(a, b *Error) int { return a.Line - b.Line })
	errs := make([]error, len(p.list))
	for i, e := range p.list {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// syntaxError turns yaml's "yaml: line 3: did not find expected key" into
// an Error on line 3. yaml gives the line where the enclosing block starts,
// which for a tab in an indentation is not the tab's line, so that one is
// found here.
func (p *problems) syntaxError(err error, data []byte) {
	p.syntax = true
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := regexp.MustCompile(`^line (\d+): `).FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if tab := tabLine(data); tab > 0 && (strings.Contains(msg, "tab") || strings.Contains(msg, "cannot start any token")) {
		line, msg = tab, "this line is indented with a tab; indent with spaces only"
	}
	p.add(line, "", "not valid YAML: %s", msg)
}

// tabLine returns the first line indented with a tab, or 0.
func tabLine(data []byte) int {
	for i, l := range strings.Split(string(data), "\n") {
		if indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]; strings.Contains(indent, "\t") {
			return i + 1
		}
	}
	return 0
}

package forget

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a span in calendar units, as restic's --keep-within takes it:
// "1y6m" is one year and six months, "7d", "36h", "2y5m7d3h".
type Duration struct {
	Years, Months, Days, Hours int
}

// ParseDuration reads a Duration: numbers each followed by y, m, d or h.
func ParseDuration(s string) (Duration, error) {
	var d Duration
	if s == "" {
		return d, errors.New("empty duration: want numbers followed by y, m, d or h, such as 30d or 1y6m")
	}
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 {
			return Duration{}, fmt.Errorf("duration %q: expected a number at %q (want numbers followed by y, m, d or h, such as 30d or 1y6m)", s, rest)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil {
			return Duration{}, fmt.Errorf("duration %q: %w", s, err)
		}
		if i == len(rest) {
			return Duration{}, fmt.Errorf("duration %q: no unit after %d (add y, m, d or h)", s, n)
		}
		switch rest[i] {
		case 'y':
			d.Years = n
		case 'm':
			d.Months = n
		case 'd':
			d.Days = n
		case 'h':
			d.Hours = n
		default:
			return Duration{}, fmt.Errorf("duration %q: unknown unit %q (use y, m, d or h)", s, rest[i])
		}
		rest = rest[i+1:]
	}
	return d, nil
}

// Zero reports whether d spans nothing.
func (d Duration) Zero() bool { return d == Duration{} }

func (d Duration) String() string {
	var b strings.Builder
	for _, p := range []struct {
		n    int
		unit string
	}{{d.Years, "y"}, {d.Months, "m"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if p.n != 0 {
			fmt.Fprintf(&b, "%d%s", p.n, p.unit)
		}
	}
	return b.String()
}

// before returns t moved back by d, in calendar arithmetic as restic does.
func (d Duration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}

// Set and Type let a Duration be a command-line flag.
func (d *Duration) Set(s string) error {
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// Type names the flag's value in help.
func (d *Duration) Type() string { return "duration" }

package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/s3"
)

// parseAsOf reads the time given to --as-of: RFC 3339
// ("2026-11-20T10:00:00Z"), a date ("2026-11-20": the start of that day in
// now's time zone), a date and time without zone ("2026-11-20 10:00",
// now's zone), or a span before now ("2 hours ago", "30m ago", "1h30m ago",
// "3 days ago"). A time after now is refused: the store has no versions
// from the future, and a typo should not read as "now".
func parseAsOf(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	t, err := parseAsOfTime(s, now)
	if err != nil {
		return time.Time{}, err
	}
	if t.After(now) {
		return time.Time{}, fmt.Errorf("--as-of %q is in the future (%s); give a past time", s, t.Format(time.RFC3339))
	}
	return t, nil
}

var relativeTime = regexp.MustCompile(`^(\d+)\s*([a-z]+)\s+ago$`)

func parseAsOfTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("--as-of needs a time")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			return t, nil
		}
	}
	lower := strings.ToLower(s)
	if m := relativeTime.FindStringSubmatch(lower); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil {
			if unit, ok := timeUnits[m[2]]; ok {
				if n > int(200*365*24*time.Hour/unit) {
					return time.Time{}, fmt.Errorf("--as-of %q is too far back", s)
				}
				return now.Add(-time.Duration(n) * unit), nil
			}
		}
	}
	if d, ok := strings.CutSuffix(lower, " ago"); ok {
		if dur, err := time.ParseDuration(strings.TrimSpace(d)); err == nil && dur >= 0 {
			return now.Add(-dur), nil
		}
	}
	return time.Time{}, fmt.Errorf(`--as-of %q: not a time; use RFC 3339 ("2026-11-20T10:00:00Z"), a date ("2026-11-20"), or a span like "2 hours ago", "30m ago", "3 days ago"`, s)
}

var timeUnits = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "secs": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "mins": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hrs": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
}

// asOfTime returns --as-of as a time, or the zero time without the flag.
func (o *globalOptions) asOfTime() (time.Time, error) {
	if o.AsOf == "" {
		return time.Time{}, nil
	}
	t, err := parseAsOf(o.AsOf, time.Now())
	if err != nil {
		return time.Time{}, usageError(err)
	}
	return t, nil
}

// refuseAsOf fails when --as-of is given to a command that writes to the
// repository (what says what it does) without opening it through the
// global options, whose as-of view would refuse the first write anyway.
func (o *globalOptions) refuseAsOf(what string) error {
	if o.AsOf == "" {
		return nil
	}
	return usageError(fmt.Errorf("--as-of is read-only: this command would %s, which cannot be done in the past (drop --as-of; to make the bucket look like that time, run escrow recover --as-of TIME with the owner's credentials)", what))
}

// asOfView turns be, just opened, into its read-only view at time at (the
// zero time: be itself). Only a bucket with versioning has a past to read.
func asOfView(ctx context.Context, be remote.Backend, at time.Time, ro remote.RetryOptions) (remote.Backend, error) {
	if at.IsZero() {
		return be, nil
	}
	sb, ok := be.(*s3.Backend)
	if !ok {
		return nil, usageError(fmt.Errorf("--as-of needs a bucket with versioning; %s keeps no older versions of its files (use an s3: repository in a bucket with versioning, see docs/as-of.md)", be.Location()))
	}
	var view *s3.View
	err := remote.Retry(ctx, ro, be.Location(), "check versioning", func() error {
		var err error
		view, err = sb.AsOf(ctx, at)
		return err
	})
	if err != nil {
		return nil, err
	}
	return view, nil
}

// Package forget decides which snapshots a retention policy keeps, with
// restic's keep rules and the same results as `restic forget`: snapshots
// are grouped (by host and paths unless told otherwise), and in each group,
// newest first, a snapshot is kept when it is one of the last n, the newest
// of one of the last n hours, days, ISO weeks, months or years that have a
// snapshot, within a duration of the group's newest snapshot, or carries a
// kept tag. Buckets are counted in each snapshot's own recorded time zone,
// as restic does.
//
// Snapshots tagged pre-deletion are always kept: the agent sets that tag
// on the backup it makes when it suspects a mass deletion on the site, and
// no schedule may age out the copy taken before the damage.
package forget

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/repo"
)

// TagPreDeletion marks a snapshot taken when a mass deletion was suspected;
// every policy keeps it.
const TagPreDeletion = "pre-deletion"

// Policy is a set of keep rules; a snapshot is kept when any rule keeps it.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	// Within keeps every snapshot newer than the group's newest minus it.
	Within Duration
	// WithinHourly and friends keep the newest snapshot of each hour (day,
	// week, month, year) within that duration of the group's newest.
	WithinHourly, WithinDaily, WithinWeekly, WithinMonthly, WithinYearly Duration
	// Tags keeps snapshots that carry every tag of any one of these lists.
	Tags [][]string
}

// Empty reports whether the policy has no rule; an empty policy keeps
// everything, as restic's does, so that a forgotten flag never deletes.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 && p.Yearly == 0 &&
		p.Within.Zero() && p.WithinHourly.Zero() && p.WithinDaily.Zero() && p.WithinWeekly.Zero() &&
		p.WithinMonthly.Zero() && p.WithinYearly.Zero() && len(p.Tags) == 0
}

// Decision is what the policy does with one snapshot, and why.
type Decision struct {
	Snapshot *repo.Snapshot
	Keep     bool
	Reasons  []string // the rules that keep it; empty when removed
}

func ymdh(t time.Time, _ int) int {
	return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour()
}
func ymd(t time.Time, _ int) int { return t.Year()*10000 + int(t.Month())*100 + t.Day() }
func yw(t time.Time, _ int) int {
	y, w := t.ISOWeek()
	return y*100 + w
}
func ym(t time.Time, _ int) int      { return t.Year()*100 + int(t.Month()) }
func y(t time.Time, _ int) int       { return t.Year() }
func always(_ time.Time, nr int) int { return nr }

type bucket struct {
	count  int
	within Duration
	key    func(time.Time, int) int
	last   int
	reason string
}

// Apply decides for each snapshot of one group. It returns the decisions
// newest first (ties broken by ID, so the result does not depend on the
// order of list).
func (p Policy) Apply(list []*repo.Snapshot) []Decision {
	snaps := append([]*repo.Snapshot(nil), list...)
	sort.SliceStable(snaps, func(i, j int) bool {
		if !snaps[i].Time.Equal(snaps[j].Time) {
			return snaps[i].Time.After(snaps[j].Time)
		}
		return snaps[i].ID.String() < snaps[j].ID.String()
	})
	out := make([]Decision, 0, len(snaps))
	if p.Empty() {
		for _, sn := range snaps {
			out = append(out, Decision{Snapshot: sn, Keep: true, Reasons: []string{"policy is empty"}})
		}
		return out
	}
	counted := []bucket{
		{count: p.Last, key: always, reason: "last snapshot"},
		{count: p.Hourly, key: ymdh, reason: "hourly snapshot"},
		{count: p.Daily, key: ymd, reason: "daily snapshot"},
		{count: p.Weekly, key: yw, reason: "weekly snapshot"},
		{count: p.Monthly, key: ym, reason: "monthly snapshot"},
		{count: p.Yearly, key: y, reason: "yearly snapshot"},
	}
	within := []bucket{
		{within: p.WithinHourly, key: ymdh, reason: "hourly within"},
		{within: p.WithinDaily, key: ymd, reason: "daily within"},
		{within: p.WithinWeekly, key: yw, reason: "weekly within"},
		{within: p.WithinMonthly, key: ym, reason: "monthly within"},
		{within: p.WithinYearly, key: y, reason: "yearly within"},
	}
	for i := range counted {
		counted[i].last = -1
	}
	for i := range within {
		within[i].last = -1
	}
	var latest time.Time
	for _, sn := range snaps {
		if sn.Time.After(latest) {
			latest = sn.Time
		}
	}
	for nr, sn := range snaps {
		var reasons []string
		if sn.HasTag(TagPreDeletion) {
			reasons = append(reasons, "tagged "+TagPreDeletion+" (always kept)")
		}
		for _, tags := range p.Tags {
			if hasAll(sn, tags) {
				reasons = append(reasons, fmt.Sprintf("has tags [%s]", strings.Join(tags, ",")))
			}
		}
		if !p.Within.Zero() && sn.Time.After(p.Within.before(latest)) {
			reasons = append(reasons, "within "+p.Within.String())
		}
		for i := range counted {
			b := &counted[i]
			if b.count <= 0 {
				continue
			}
			if v := b.key(sn.Time, nr); v != b.last {
				b.last = v
				b.count--
				reasons = append(reasons, b.reason)
			}
		}
		for i := range within {
			b := &within[i]
			if b.within.Zero() || !sn.Time.After(b.within.before(latest)) {
				continue
			}
			if v := b.key(sn.Time, nr); v != b.last {
				b.last = v
				reasons = append(reasons, b.reason+" "+b.within.String())
			}
		}
		out = append(out, Decision{Snapshot: sn, Keep: len(reasons) > 0, Reasons: reasons})
	}
	return out
}

func hasAll(sn *repo.Snapshot, tags []string) bool {
	for _, t := range tags {
		if !sn.HasTag(t) {
			return false
		}
	}
	return true
}

package forget

import (
	"fmt"
	"sort"
	"strings"

	"github.com/escrow-backup/escrow/repo"
)

// GroupBy says which snapshot fields separate groups; the policy applies to
// each group on its own.
type GroupBy struct {
	Host, Paths, Tags bool
}

// DefaultGroupBy is restic's default: host and paths.
var DefaultGroupBy = GroupBy{Host: true, Paths: true}

// ParseGroupBy reads a comma-separated list of host, paths and tags; the
// empty string puts every snapshot in one group.
func ParseGroupBy(s string) (GroupBy, error) {
	var g GroupBy
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "":
		case "host":
			g.Host = true
		case "paths":
			g.Paths = true
		case "tags":
			g.Tags = true
		default:
			return g, fmt.Errorf("group by %q: unknown field %q (use host, paths and/or tags, separated by commas, or '' for one group)", s, f)
		}
	}
	return g, nil
}

// Group is snapshots that share the grouping fields.
type Group struct {
	Host  string   `json:"host,omitempty"`
	Paths []string `json:"paths,omitempty"`
	Tags  []string `json:"tags,omitempty"`

	Snapshots []*repo.Snapshot `json:"-"`
}

// Groups splits snaps into groups, in a stable order (by key).
func Groups(snaps []*repo.Snapshot, by GroupBy) []*Group {
	m := map[string]*Group{}
	var keys []string
	for _, sn := range snaps {
		var g Group
		if by.Host {
			g.Host = sn.Hostname
		}
		if by.Paths {
			g.Paths = sorted(sn.Paths)
		}
		if by.Tags {
			g.Tags = sorted(sn.Tags)
		}
		key := g.Host + "\x00" + strings.Join(g.Paths, "\x01") + "\x00" + strings.Join(g.Tags, "\x01")
		if m[key] == nil {
			m[key] = &g
			keys = append(keys, key)
		}
		m[key].Snapshots = append(m[key].Snapshots, sn)
	}
	sort.Strings(keys)
	out := make([]*Group, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

func sorted(list []string) []string {
	if len(list) == 0 {
		return nil
	}
	s := append([]string(nil), list...)
	sort.Strings(s)
	return s
}

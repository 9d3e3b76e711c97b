package prune

import (
	"sort"
	"time"

	"github.com/escrow-backup/escrow/repo"
)

// pack is one stored or indexed pack and what prune decided for it.
type pack struct {
	id      repo.ID
	size    int64 // as listed; the index's size when not listed
	modTime time.Time
	indexed bool              // some index file lists it
	blobs   []repo.PackedBlob // from every index file listing it, each blob once
	// pinned: an index file that lists this pack is under retention and
	// stays, so the pack must stay too or that file would point at nothing.
	pinned bool

	used      []repo.PackedBlob // blobs this pack provides to the snapshots
	usedBytes int64
	action    action
	// until is the end of the retention that keeps this pack, when that
	// is why it stays.
	until time.Time
}

type action int

const (
	keep       action = iota
	remove            // no used blob: delete
	repack            // copy the used blobs to new packs, then delete
	keepYoung         // unindexed but younger than the grace period
	removeOrph        // unindexed and older than the grace period: delete
	protected         // would be removed or repacked, but is under retention
)

// claim decides which pack provides each used blob. A blob stored in
// several packs (left by an interrupted backup or prune) is claimed by the
// pack with the largest share of used blobs, so that a re-run after an
// interrupted repack settles on the new packs instead of repacking again.
func claim(packs []*pack, used map[repo.BlobHandle]struct{}) {
	type ranked struct {
		p     *pack
		share float64
	}
	rs := make([]ranked, 0, len(packs))
	for _, p := range packs {
		n := 0
		for _, b := range p.blobs {
			if _, ok := used[b.BlobHandle]; ok {
				n++
			}
		}
		share := 0.0
		if len(p.blobs) > 0 {
			share = float64(n) / float64(len(p.blobs))
		}
		rs = append(rs, ranked{p, share})
	}
	// Pinned packs stay whatever happens: let them provide first.
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].p.pinned != rs[j].p.pinned {
			return rs[i].p.pinned
		}
		if rs[i].share != rs[j].share {
			return rs[i].share > rs[j].share
		}
		return rs[i].p.id.String() < rs[j].p.id.String()
	})
	claimed := make(map[repo.BlobHandle]bool, len(used))
	for _, r := range rs {
		for _, b := range r.p.blobs {
			if _, ok := used[b.BlobHandle]; ok && !claimed[b.BlobHandle] {
				claimed[b.BlobHandle] = true
				r.p.used = append(r.p.used, b)
				r.p.usedBytes += int64(b.Length)
			}
		}
	}
}

// choose sets each indexed pack's action, restic-style: packs without a
// used blob are removed; partly used packs are repacked, most wasteful
// first, until the unused bytes left are at most maxUnused percent of the
// used bytes; with repackSmall, packs under 80% of the target size are
// repacked too, when there are at least two of them to merge.
func choose(packs []*pack, maxUnused float64, repackSmall bool, packSize int64) {
	var partly []*pack
	var usedTotal, unusedLeft int64
	var small []*pack
	for _, p := range packs {
		usedTotal += p.usedBytes
		switch {
		case p.pinned:
			p.action = keep
			unusedLeft += p.size - p.usedBytes
		case len(p.used) == 0:
			p.action = remove
		case len(p.used) < len(p.blobs):
			p.action = keep
			partly = append(partly, p)
			unusedLeft += p.size - p.usedBytes
		default:
			p.action = keep
		}
		if p.action == keep && !p.pinned && p.size < packSize*8/10 {
			small = append(small, p)
		}
	}
	limit := int64(maxUnused / (100 - maxUnused) * float64(usedTotal))
	if maxUnused >= 100 {
		limit = -1 // unlimited
	}
	sort.Slice(partly, func(i, j int) bool {
		ui, uj := partly[i].size-partly[i].usedBytes, partly[j].size-partly[j].usedBytes
		if ui*partly[j].size != uj*partly[i].size {
			return ui*partly[j].size > uj*partly[i].size // larger unused share first
		}
		return partly[i].id.String() < partly[j].id.String()
	})
	for _, p := range partly {
		if limit < 0 || unusedLeft <= limit {
			break
		}
		p.action = repack
		unusedLeft -= p.size - p.usedBytes
	}
	if repackSmall && len(small) >= 2 {
		for _, p := range small {
			p.action = repack
		}
	}
}

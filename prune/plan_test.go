package prune

import (
	"testing"

	"github.com/escrow-backup/escrow/repo"
)

func blob(n byte, length uint32) repo.PackedBlob {
	var id repo.ID
	id[0] = n
	return repo.PackedBlob{BlobHandle: repo.BlobHandle{ID: id, Type: repo.DataBlob}, Length: length}
}

// testPack makes a pack of blobs of 100 bytes each, sized as their sum.
func testPack(name byte, blobs ...byte) *pack {
	p := &pack{indexed: true}
	p.id[0] = name
	for _, b := range blobs {
		p.blobs = append(p.blobs, blob(b, 100))
		p.size += 100
	}
	return p
}

func usedSet(blobs ...byte) map[repo.BlobHandle]struct{} {
	m := map[repo.BlobHandle]struct{}{}
	for _, b := range blobs {
		m[blob(b, 100).BlobHandle] = struct{}{}
	}
	return m
}

// A blob stored twice is provided by the fuller pack, so that after an
// interrupted repack the new pack wins and the old one goes.
func TestClaimPrefersFullerPacks(t *testing.T) {
	old := testPack(1, 1, 2, 3, 4) // 1 and 2 used: half
	fresh := testPack(2, 1, 2)     // a repacked copy: all used
	claim([]*pack{old, fresh}, usedSet(1, 2))
	if len(fresh.used) != 2 || len(old.used) != 0 {
		t.Fatalf("fresh provides %d, old %d", len(fresh.used), len(old.used))
	}
	choose([]*pack{old, fresh}, 5, false, 1000)
	if old.action != remove || fresh.action != keep {
		t.Fatalf("old %v, fresh %v", old.action, fresh.action)
	}
}

// Partly used packs are repacked, most wasteful first, only until the
// unused data left is within max-unused of the used data.
func TestChooseMaxUnused(t *testing.T) {
	mk := func() []*pack {
		return []*pack{
			testPack(1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19), // 9 of 10 used
			testPack(2, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29), // 5 of 10 used
			testPack(3, 30, 31, 32, 33),                         // none used
			testPack(4, 40, 41),                                 // all used
		}
	}
	used := usedSet(10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24, 40, 41)
	for _, tc := range []struct {
		maxUnused float64
		want      []action
	}{
		{0, []action{repack, repack, remove, keep}},
		// used 1600 bytes; unused left 600: 100% tolerates it all.
		{50, []action{keep, keep, remove, keep}},
		// 10% of 1600 / 90% ≈ 177: repacking pack 2 leaves 100.
		{10, []action{keep, repack, remove, keep}},
		{100, []action{keep, keep, remove, keep}},
	} {
		packs := mk()
		claim(packs, used)
		choose(packs, tc.maxUnused, false, 1000)
		for i, p := range packs {
			if p.action != tc.want[i] {
				t.Errorf("max-unused %v%%: pack %d: %v, want %v", tc.maxUnused, i+1, p.action, tc.want[i])
			}
		}
	}
	// A pinned pack stays whatever it holds.
	packs := mk()
	packs[2].pinned = true
	claim(packs, used)
	choose(packs, 0, false, 1000)
	if packs[2].action != keep {
		t.Errorf("pinned unused pack: %v", packs[2].action)
	}
}

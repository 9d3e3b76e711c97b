package repo

import "testing"

func TestTreePackCacheKeepsFullPacks(t *testing.T) {
	c := newTreePackCache(treeCacheSize)
	// A full pack: the pack size, plus the last blob that went past it and
	// the header.
	full := make([]byte, DefaultPackSize+(512<<10))
	for i := range 3 {
		c.add(ID{byte(i)}, full)
	}
	for i := range 3 {
		if _, ok := c.lookup(ID{byte(i)}); !ok {
			t.Errorf("full pack %d of 3 is not cached (cache of %d bytes)", i, treeCacheSize)
		}
	}
	// A fourth evicts the least recently used.
	c.add(ID{3}, full)
	if _, ok := c.lookup(ID{0}); ok {
		t.Error("pack 0 is still cached after a fourth full pack")
	}
	if c.size > c.max {
		t.Errorf("cache holds %d bytes, more than its bound %d", c.size, c.max)
	}
	// One more than half the cache is not kept.
	c.add(ID{9}, make([]byte, treeCacheSize/2+1))
	if _, ok := c.lookup(ID{9}); ok {
		t.Error("a pack of more than half the cache was cached")
	}
}

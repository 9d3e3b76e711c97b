package repo

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/escrow-backup/escrow/remote"
)

// treePackCache keeps recently used tree packs in memory. Walking a snapshot
// (comparing with the parent during a backup, listing, planning a restore)
// reads one tree per directory; trees of the same backup share a few packs,
// so fetching each pack once turns thousands of small ranged reads into a
// handful. The cache is bounded in bytes and evicts the least recently used.
type treePackCache struct {
	max int64

	mu    sync.Mutex
	size  int64
	lru   *list.List // of *cachedPack, most recent first
	packs map[ID]*list.Element
	group singleflight.Group
}

type cachedPack struct {
	id   ID
	data []byte
}

// treeCacheSize bounds the memory the cache may hold.
const treeCacheSize = 32 << 20

func newTreePackCache(max int64) *treePackCache {
	return &treePackCache{max: max, lru: list.New(), packs: map[ID]*list.Element{}}
}

func (c *treePackCache) lookup(id ID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.packs[id]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cachedPack).data, true
}

func (c *treePackCache) add(id ID, data []byte) {
	// A full pack is a little over the pack size (its last blob and its
	// header go past it), so the bound must leave room for that: at a
	// quarter of the cache, no full 8 MiB pack was ever kept, and each tree
	// read from one cost a download of the whole pack. A pack of more than
	// half the cache would push out most of the others.
	if int64(len(data)) > c.max/2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.packs[id]; ok {
		return
	}
	c.packs[id] = c.lru.PushFront(&cachedPack{id: id, data: data})
	c.size += int64(len(data))
	for c.size > c.max {
		last := c.lru.Back()
		p := last.Value.(*cachedPack)
		c.lru.Remove(last)
		delete(c.packs, p.id)
		c.size -= int64(len(p.data))
	}
}

// sealedTree returns a tree blob's sealed bytes, loading its whole pack
// (once, even when asked concurrently) if it is not cached.
func (r *Repository) sealedTree(ctx context.Context, pb PackedBlob, size int64) ([]byte, error) {
	data, ok := r.trees.lookup(pb.PackID)
	if !ok {
		v, err, _ := r.trees.group.Do(pb.PackID.String(), func() (any, error) {
			if data, ok := r.trees.lookup(pb.PackID); ok {
				return data, nil
			}
			// Read into a buffer of the size the index gives (plus the
			// room a read to the end needs): read into a growing buffer
			// and then copied, a pack held up to three times its size at
			// once, which a backup's peak memory felt. The size is only
			// trusted as far as the cache would keep the pack.
			var buf []byte
			if size > 0 && size <= r.trees.max/2 {
				buf = make([]byte, 0, size+bytes.MinRead)
			}
			data, err := remote.LoadRangeInto(ctx, r.be, remote.Handle{Type: remote.PackFile, Name: pb.PackID.String()}, 0, 0, buf)
			if err != nil {
				return nil, err
			}
			// Read to its end, the pack grew into a buffer of up to twice
			// its size; the cache counts its length, so keep no more.
			if cap(data) > len(data)+len(data)/8 {
				data = bytes.Clone(data)
			}
			r.trees.add(pb.PackID, data)
			return data, nil
		})
		if err != nil {
			return nil, fmt.Errorf("load tree pack %s: %w", pb.PackID.Str(), err)
		}
		data = v.([]byte)
	}
	end := int64(pb.Offset) + int64(pb.Length)
	if end > int64(len(data)) || (size > 0 && int64(len(data)) != size) {
		return nil, fmt.Errorf("%s in pack %s: %w: the pack is %d bytes, the index says %d", pb.BlobHandle, pb.PackID.Str(), ErrCorrupt, len(data), size)
	}
	return data[pb.Offset:end], nil
}

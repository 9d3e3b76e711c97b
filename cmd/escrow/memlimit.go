package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// A soft memory limit that follows the live heap. Most of what escrow keeps
// live is long-lived and reused: the index (about 54 bytes a blob) and the
// pack, chunk and range buffers. With the collector's goal at the live heap
// plus gcPercent, those are paid for again as headroom, and the spans freed
// by short-lived large allocations (a big directory's tree, a tree pack)
// stay mapped until the scavenger gets to them: at 1,000,000 files and
// 20 GB a backup's peak RSS was about twice its live heap. A limit a little
// above the live heap bounds both: the collector runs before the heap grows
// more than the headroom past it, and the runtime returns free spans to the
// OS as the total nears the limit.
//
// The limit is derived from the live heap the collector last measured, so
// it can never sit below it: a limit below the live heap would make the
// collector run back to back. When the heap grows between two readings, the
// collector runs a little early, measures it, and the limit set after that
// collection is raised with it. GOMEMLIMIT, when set, replaces all of this.
const (
	// The headroom over the live heap is a fraction
	// (1/limitHeadroomDiv) with a floor of limitHeadroomMin bytes: about
	// twice as many collections as gcPercent alone, each cheap because
	// the big buffers and the index hold no pointers to scan.
	limitHeadroomDiv = 4
	limitHeadroomMin = 48 << 20
)

// memoryLimitFor is the soft limit for a live heap of live bytes.
func memoryLimitFor(live uint64) int64 {
	h := uint64(max(live/limitHeadroomDiv, limitHeadroomMin))
	if live > math.MaxInt64-h {
		return math.MaxInt64 // no limit
	}
	return int64(live + h)
}

// followLiveHeap keeps the soft memory limit at memoryLimitFor(live heap)
// until stop is called. It runs after each collection, from the finalizer
// of an object that each run replaces with a new one, so an idle process
// (the agent between two backups) is not woken to check it.
func followLiveHeap() (stop func()) {
	var stopped atomic.Bool
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		runtime.SetFinalizer(new(gcSentinel), func(*gcSentinel) {
			if stopped.Load() {
				return
			}
			metrics.Read(samples)
			debug.SetMemoryLimit(memoryLimitFor(samples[0].Value.Uint64()))
			arm()
		})
	}
	arm()
	return func() { stopped.Store(true) }
}

// gcSentinel is allocated only to be collected: its finalizer runs once a
// collection has found it unreachable. It holds a pointer so that it is
// not put in a block shared with other small objects (the runtime's tiny
// allocator), whose finalizers wait for the whole block.
type gcSentinel struct{ _ *byte }

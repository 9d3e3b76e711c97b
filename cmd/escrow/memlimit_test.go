package main

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

// TestMemoryLimitFor keeps the soft limit above the live heap by its
// headroom at every size, without overflowing at absurd ones.
func TestMemoryLimitFor(t *testing.T) {
	for _, live := range []uint64{0, 1 << 20, 100 << 20, 192 << 20, 1 << 30, 64 << 30, math.MaxInt64, math.MaxUint64} {
		got := memoryLimitFor(live)
		want := uint64(math.MaxInt64) // no limit
		if live < 1<<40 {
			want = live + max(live/limitHeadroomDiv, limitHeadroomMin)
		}
		if got < 0 || uint64(got) != want {
			t.Errorf("memoryLimitFor(%d) = %d, want %d", live, got, want)
		}
		if live < math.MaxInt64 && uint64(got) <= live {
			t.Errorf("memoryLimitFor(%d) = %d: not above the live heap", live, got)
		}
	}
}

// TestFollowLiveHeapRaisesLimit holds a large pointer-free allocation, as
// the index and the pack buffers are, and checks that after a collection
// the limit is set from the live heap: above it by the headroom, and
// below "no limit". Once stopped, collections leave the limit alone.
func TestFollowLiveHeapRaisesLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(prev)
	stop := followLiveHeap()

	ballast := make([]byte, 96<<20)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		time.Sleep(20 * time.Millisecond) // the hook runs soon after
		metrics.Read(live)
		limit := debug.SetMemoryLimit(-1)
		l := live[0].Value.Uint64()
		if limit < math.MaxInt64 && uint64(limit) > l && l >= uint64(len(ballast)) &&
			uint64(limit) >= uint64(len(ballast))+limitHeadroomMin {
			t.Logf("live heap %d MiB, limit %d MiB", l>>20, limit>>20)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("limit %d after 5 s, want about %d for a live heap of %d", limit, memoryLimitFor(l), l)
		}
	}
	runtime.KeepAlive(ballast)

	stop()
	debug.SetMemoryLimit(math.MaxInt64)
	for range 3 {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		t.Errorf("limit %d after stop, want it left alone", limit)
	}
}

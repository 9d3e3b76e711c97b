package watch

import (
	"fmt"
	"path/filepath"
	"testing"
)

// TestUnwatchBelowAllocatesLittle: unwatchBelow looks at every watch of the
// root each time a watched directory goes away, so it must not allocate per
// watch.
func TestUnwatchBelowAllocatesLittle(t *testing.T) {
	w := newWatcher(t)
	dir := t.TempDir()
	r, err := w.Add(dir, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10000 {
		r.watched[filepath.Join(dir, fmt.Sprintf("d%d", i/100), fmt.Sprintf("e%d", i))] = struct{}{}
	}
	gone := filepath.Join(dir, "gone")
	allocs := testing.AllocsPerRun(10, func() {
		w.mu.Lock()
		r.watched[gone] = struct{}{}
		w.unwatchBelow(r, gone)
		w.mu.Unlock()
	})
	if _, ok := r.watched[gone]; ok {
		t.Fatal("the removed directory is still watched")
	}
	if allocs > 20 {
		t.Errorf("unwatchBelow made %.0f allocations with 10,000 watches, want a few", allocs)
	}
}

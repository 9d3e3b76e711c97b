package remote_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/remote/remotetest"
)

func TestCacheConformance(t *testing.T) {
	remotetest.Run(t, func(t *testing.T) remote.Backend {
		b, err := local.Create(context.Background(), filepath.Join(t.TempDir(), "repo"))
		if err != nil {
			t.Fatal(err)
		}
		c, err := remote.NewCache(b, filepath.Join(t.TempDir(), "cache"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	})
}

// countingBackend counts the loads that reach the store.
type countingBackend struct {
	remote.Backend
	loads atomic.Int64
}

func (b *countingBackend) Load(ctx context.Context, h remote.Handle, off, n int64) (io.ReadCloser, error) {
	b.loads.Add(1)
	return b.Backend.Load(ctx, h, off, n)
}

func hashName(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestCacheServesIntactCopiesOnly(t *testing.T) {
	ctx := context.Background()
	lb, err := local.Create(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	store := &countingBackend{Backend: lb}
	dir := filepath.Join(t.TempDir(), "cache")

	data := []byte("an encrypted index file, as far as the cache knows")
	h := remote.Handle{Type: remote.IndexFile, Name: hashName(data)}
	if err := lb.Save(ctx, h, data); err != nil { // written by another host: not cached yet
		t.Fatal(err)
	}
	c, err := remote.NewCache(store, dir)
	if err != nil {
		t.Fatal(err)
	}
	load := func() []byte {
		t.Helper()
		got, err := remote.LoadAll(ctx, c, h)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(data) {
			t.Fatalf("loaded %q, want %q", got, data)
		}
		return got
	}
	load()
	load()
	if n := store.loads.Load(); n != 1 {
		t.Errorf("two loads reached the store %d times, want 1", n)
	}
	if got, err := remote.LoadRange(ctx, c, h, 3, 9); err != nil || string(got) != string(data[3:12]) {
		t.Errorf("range from the cache = %q, %v", got, err)
	}

	// A damaged copy is not used, and is replaced.
	cached := filepath.Join(dir, "index", h.Name)
	if err := os.WriteFile(cached, []byte("bit rot"), 0o600); err != nil {
		t.Fatal(err)
	}
	load()
	if n := store.loads.Load(); n != 2 {
		t.Errorf("a damaged copy was served: store loads = %d, want 2", n)
	}
	load()
	if n := store.loads.Load(); n != 2 {
		t.Errorf("the damaged copy was not repaired: store loads = %d, want 2", n)
	}
	if fi, err := os.Stat(cached); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cached copy: %v, %v; want mode 0600", fi.Mode(), err)
	}

	// Saved through the cache: cached at once. Pack files never are.
	other := []byte("a snapshot file")
	hs := remote.Handle{Type: remote.SnapshotFile, Name: hashName(other)}
	if err := c.Save(ctx, hs, other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", hs.Name)); err != nil {
		t.Errorf("saved snapshot not cached: %v", err)
	}
	pack := []byte("pack")
	hp := remote.Handle{Type: remote.PackFile, Name: hashName(pack)}
	if err := c.Save(ctx, hp, pack); err != nil {
		t.Fatal(err)
	}
	before := store.loads.Load()
	if _, err := remote.LoadAll(ctx, c, hp); err != nil {
		t.Fatal(err)
	}
	if store.loads.Load() != before+1 {
		t.Error("a pack load did not reach the store")
	}

	// Objects the store no longer lists leave the cache on Prune.
	if err := lb.Remove(ctx, hs); err != nil {
		t.Fatal(err)
	}
	if err := c.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots", hs.Name)); !os.IsNotExist(err) {
		t.Errorf("pruned snapshot still cached: %v", err)
	}
	if _, err := os.Stat(cached); err != nil {
		t.Errorf("live index dropped by Prune: %v", err)
	}
}

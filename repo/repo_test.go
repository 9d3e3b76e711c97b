package repo_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

var fastKDF = repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}}

func newRepo(t testing.TB, opts repo.Options) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir() + "/repo"
	be, err := local.Create(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(context.Background(), be, "secret", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, dir
}

func openRepo(t *testing.T, dir, password string) (*repo.Repository, error) {
	t.Helper()
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return repo.Open(context.Background(), be, password, fastKDF)
}

func TestBlobsSurviveReopen(t *testing.T) {
	ctx := context.Background()
	opts := fastKDF
	opts.PackSize = 64 << 10 // many packs
	r, dir := newRepo(t, opts)
	rnd := rand.New(rand.NewSource(1))
	var blobs [][]byte
	w := r.NewWriter(ctx)
	for i := 0; i < 50; i++ {
		b := make([]byte, rnd.Intn(40<<10))
		if i%2 == 0 {
			rnd.Read(b) // incompressible
		}
		b = append(b, byte(i))
		blobs = append(blobs, b)
		if _, isNew, err := w.SaveBlob(ctx, repo.DataBlob, b); err != nil || !isNew {
			t.Fatalf("save %d: new=%v err=%v", i, isNew, err)
		}
	}
	// The same content again is deduplicated, even before the upload.
	if _, isNew, err := w.SaveBlob(ctx, repo.DataBlob, blobs[0]); err != nil || isNew {
		t.Fatalf("duplicate: new=%v err=%v", isNew, err)
	}
	tid, err := w.SaveTree(ctx, &repo.Tree{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SaveSnapshot(ctx, &repo.Snapshot{Time: time.Now(), Tree: &tid, Paths: []string{"/x"}}); err != nil {
		t.Fatal(err)
	}

	r2, err := openRepo(t, dir, "secret")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := r2.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r2.Index().Len(); got != 51 {
		t.Fatalf("index has %d blobs, want 51", got)
	}
	for i, b := range blobs {
		got, err := r2.LoadBlob(ctx, repo.BlobHandle{ID: repo.Hash(b), Type: repo.DataBlob}, nil)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("blob %d: err=%v equal=%v", i, err, bytes.Equal(got, b))
		}
	}
	snaps, err := r2.Snapshots(ctx)
	if err != nil || len(snaps) != 1 || *snaps[0].Tree != tid {
		t.Fatalf("snapshots %v %v", snaps, err)
	}
}

func TestWrongPassword(t *testing.T) {
	_, dir := newRepo(t, fastKDF)
	_, err := openRepo(t, dir, "not the password")
	if !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatalf("got %v, want ErrWrongPassword", err)
	}
}

func TestSealOpenDetectsTampering(t *testing.T) {
	k, err := repo.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("the only copy of the shop's database")
	a := k.Seal(nil, msg)
	b := k.Seal(nil, msg)
	if bytes.Equal(a[:16], b[:16]) {
		t.Fatal("two seals reused an IV")
	}
	got, err := k.Open(nil, a)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open: %v", err)
	}
	for i := range a {
		c := append([]byte(nil), a...)
		c[i] ^= 0x01
		if _, err := k.Open(nil, c); !errors.Is(err, repo.ErrUnauthenticated) {
			t.Fatalf("flip at byte %d not detected: %v", i, err)
		}
	}
}

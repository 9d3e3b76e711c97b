package repo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

// syncBuffer collects log output from concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// s3Backend opens a fresh prefix in a fresh bucket, with versioning on or off.
func s3Backend(t *testing.T, versioning bool) remote.Backend {
	t.Helper()
	ctx := context.Background()
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	if versioning {
		if err := srv.Client(t).EnableVersioning(ctx, bucket); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := s3.ParseURL(srv.URL(bucket, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.KeyID, cfg.Secret = srv.AccessKey, srv.SecretKey
	be, err := s3.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	return remote.WithRetry(be, remote.RetryOptions{})
}

// twoBlobs writes a data blob and a tree blob, each in a pack of its own,
// and returns their handles.
func twoBlobs(t *testing.T, be remote.Backend) (data, tree repo.BlobHandle, plain map[repo.BlobHandle][]byte) {
	t.Helper()
	ctx := context.Background()
	r, err := repo.Init(ctx, be, "secret", fastKDF)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := r.NewWriter(ctx)
	plain = map[repo.BlobHandle][]byte{}
	for _, bt := range []repo.BlobType{repo.DataBlob, repo.TreeBlob} {
		b := make([]byte, 5000)
		_, _ = rand.Read(b)
		if bt == repo.TreeBlob {
			b = []byte(`{"nodes":[]}` + "\n")
		}
		id, _, err := w.SaveBlob(ctx, bt, b)
		if err != nil {
			t.Fatal(err)
		}
		h := repo.BlobHandle{Type: bt, ID: id}
		plain[h] = b
		if bt == repo.DataBlob {
			data = h
		} else {
			tree = h
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return data, tree, plain
}

func openLogged(t *testing.T, be remote.Backend) (*repo.Repository, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts := fastKDF
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	r, err := repo.Open(context.Background(), be, "secret", opts)
	if err != nil {
		t.Fatalf("open: %v\n%s", err, logs)
	}
	t.Cleanup(r.Close)
	if err := r.LoadIndex(context.Background()); err != nil {
		t.Fatalf("load index: %v\n%s", err, logs)
	}
	return r, logs
}

// overwrite puts same-size garbage over an object, so that only its
// content, not its size, gives it away.
func overwrite(t *testing.T, be remote.Backend, h remote.Handle) {
	t.Helper()
	fi, err := be.Stat(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, fi.Size)
	_, _ = rand.Read(junk)
	if err := be.Save(context.Background(), h, junk); err != nil {
		t.Fatal(err)
	}
}

func packOf(t *testing.T, r *repo.Repository, h repo.BlobHandle) remote.Handle {
	t.Helper()
	pb, ok := r.Index().Lookup(h)
	if !ok {
		t.Fatalf("%s not in the index", h)
	}
	return remote.Handle{Type: remote.PackFile, Name: pb.PackID.String()}
}

func TestFallbackToOlderVersions(t *testing.T) {
	ctx := context.Background()
	be := s3Backend(t, true)
	data, tree, plain := twoBlobs(t, be)
	r, _ := openLogged(t, be)
	ids, err := r.List(ctx, remote.IndexFile)
	if err != nil || len(ids) == 0 {
		t.Fatalf("index files: %v %v", ids, err)
	}
	overwrite(t, be, packOf(t, r, data))
	overwrite(t, be, packOf(t, r, tree))
	overwrite(t, be, remote.Handle{Type: remote.ConfigFile})
	for _, id := range ids {
		overwrite(t, be, remote.Handle{Type: remote.IndexFile, Name: id.String()})
	}

	r2, logs := openLogged(t, be)
	for range 2 {
		for _, h := range []repo.BlobHandle{data, tree} {
			got, err := r2.LoadBlob(ctx, h, nil)
			if err != nil {
				t.Fatalf("load %s after its pack was overwritten: %v\n%s", h, err, logs)
			}
			if !bytes.Equal(got, plain[h]) {
				t.Fatalf("%s: wrong content after fallback", h)
			}
		}
	}
	out := logs.String()
	for _, obj := range []string{"config", packOf(t, r2, data).String(), packOf(t, r2, tree).String(), "index/" + ids[0].String()[:8]} {
		if n := strings.Count(out, "object="+obj+" "); n != 1 {
			t.Errorf("%d warnings for %s, want one:\n%s", n, obj, out)
		}
	}
	if !strings.Contains(out, "someone wrote over it") || !strings.Contains(out, "used_version=") {
		t.Errorf("warning does not say what happened:\n%s", out)
	}
	// Config, every index file and two packs, each listed once for check.
	ow := r2.Overwritten()
	if len(ow) != 3+len(ids) {
		t.Fatalf("overwritten objects: %+v", ow)
	}
	for _, o := range ow {
		if o.Used == "" || o.BadTime.Before(o.UsedTime) {
			t.Errorf("overwritten %s: %+v", o.Object, o)
		}
	}
}

func TestNoFallbackWithoutVersions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() + "/repo"
	lb, err := local.Create(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, be := range map[string]remote.Backend{"local": remote.WithRetry(lb, remote.RetryOptions{}), "s3 without versioning": s3Backend(t, false)} {
		t.Run(name, func(t *testing.T) {
			data, _, _ := twoBlobs(t, be)
			r, _ := openLogged(t, be)
			overwrite(t, be, packOf(t, r, data))
			r2, _ := openLogged(t, be)
			_, err := r2.LoadBlob(ctx, data, nil)
			if !errors.Is(err, repo.ErrCorrupt) {
				t.Fatalf("load from an overwritten pack: %v, want corrupt", err)
			}
			if name != "local" && !strings.Contains(err.Error(), "none of its 1 stored versions is sound") {
				t.Fatalf("error does not say no version is sound: %v", err)
			}
		})
	}
}

package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote"
)

// versionedBackend opens a repository prefix in a fresh bucket with
// versioning on.
func versionedBackend(t *testing.T) (*Backend, *minio.Client) {
	t.Helper()
	srv := testenv.MinIO(t)
	cfg := minioConfig(t, "repo")
	c := srv.Client(t)
	if err := c.EnableVersioning(context.Background(), cfg.Bucket); err != nil {
		t.Fatalf("enable versioning: %v", err)
	}
	b, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, c
}

// pause lets the clock move past the store's timestamp precision, so that
// a time taken now falls strictly between two writes.
func pause() time.Time {
	time.Sleep(1100 * time.Millisecond)
	t := time.Now()
	time.Sleep(1100 * time.Millisecond)
	return t
}

func load(t *testing.T, be remote.Backend, h remote.Handle) string {
	t.Helper()
	data, err := remote.LoadAll(context.Background(), be, h)
	if err != nil {
		t.Fatalf("load %s: %v", h, err)
	}
	return string(data)
}

func names(t *testing.T, be remote.Backend, ft remote.FileType) []string {
	t.Helper()
	var out []string
	if err := be.List(context.Background(), ft, func(fi remote.FileInfo) error {
		out = append(out, fi.Name+":"+string(rune('0'+fi.Size)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAsOfView(t *testing.T) {
	ctx := context.Background()
	b, _ := versionedBackend(t)
	snap := func(n string) remote.Handle { return remote.Handle{Type: remote.SnapshotFile, Name: n} }
	cfg := remote.Handle{Type: remote.ConfigFile}

	for _, h := range []remote.Handle{cfg, snap("aa"), snap("bb")} {
		if err := b.Save(ctx, h, []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	at := pause()
	// The attack: an overwrite, a delete marker, a new object.
	if err := b.Save(ctx, snap("aa"), []byte("evil!")); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, cfg, []byte("evil")); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, snap("bb")); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, snap("cc"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(t, b, remote.SnapshotFile), " "); got != "aa:5 cc:1" {
		t.Fatalf("current listing: %s", got)
	}

	// A Load before any listing looks the key up alone.
	v, err := b.AsOf(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if got := load(t, v, snap("bb")); got != "old" {
		t.Fatalf("as-of load of a deleted key before listing: %q", got)
	}
	if got := load(t, v, cfg); got != "old" {
		t.Fatalf("as-of config: %q", got)
	}
	if got := strings.Join(names(t, v, remote.SnapshotFile), " "); got != "aa:3 bb:3" {
		t.Fatalf("as-of listing: %s", got)
	}
	if got := strings.Join(names(t, v, remote.ConfigFile), " "); got != ":3" {
		t.Fatalf("as-of config listing: %s", got)
	}
	if got := load(t, v, snap("aa")); got != "old" {
		t.Fatalf("as-of load of an overwritten key: %q", got)
	}
	if _, err := v.Stat(ctx, snap("cc")); !remote.IsNotFound(err) {
		t.Fatalf("a key written after the time: %v, want not found", err)
	}
	if _, err := v.Load(ctx, snap("cc"), 0, 0); !remote.IsNotFound(err) || !strings.Contains(err.Error(), "did not exist at") {
		t.Fatalf("load of a later key: %v", err)
	}
	// Ranges read the same version.
	rd, err := v.Load(ctx, snap("aa"), 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rd)
	rd.Close()
	if string(part) != "ld" {
		t.Fatalf("range of the as-of version: %q", part)
	}

	// Before anything was written, nothing existed.
	early, err := b.AsOf(ctx, at.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, early, remote.SnapshotFile); len(got) != 0 {
		t.Fatalf("listing before the first write: %v", got)
	}

	// Read-only.
	for _, err := range []error{v.Save(ctx, snap("dd"), []byte("x")), v.Remove(ctx, snap("aa"))} {
		if !remote.IsPermanent(err) || !strings.Contains(err.Error(), "escrow recover --as-of") {
			t.Fatalf("write through an as-of view: %v", err)
		}
	}

	// Versions through the retry layer: newest first, the view's only up
	// to its time.
	rb := remote.WithRetry(b, remote.RetryOptions{}).(interface {
		Versions(context.Context, remote.Handle) ([]remote.Version, error)
	})
	all, err := rb.Versions(ctx, snap("aa"))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !all[0].Latest || all[0].Size != 5 || all[1].Size != 3 {
		t.Fatalf("versions: %+v", all)
	}
	vv, err := v.Versions(ctx, snap("bb"))
	if err != nil || len(vv) != 1 || vv[0].DeleteMarker {
		t.Fatalf("as-of versions of bb: %+v, %v", vv, err)
	}
}

func TestAsOfNeedsVersioning(t *testing.T) {
	b, err := Open(context.Background(), minioConfig(t, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, err = b.AsOf(context.Background(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "--as-of needs a bucket with versioning") || !remote.IsPermanent(err) {
		t.Fatalf("as-of on a bucket without versioning: %v", err)
	}
	if _, err := b.PlanRecover(context.Background(), time.Now()); err == nil || !strings.Contains(err.Error(), "recover needs a bucket with versioning") {
		t.Fatalf("recover on a bucket without versioning: %v", err)
	}
	// Without versioning there is one version, so falling back finds nothing.
	rb := remote.WithRetry(b, remote.RetryOptions{})
	h := remote.Handle{Type: remote.KeyFile, Name: "k"}
	if err := rb.Save(context.Background(), h, []byte("x")); err != nil {
		t.Fatal(err)
	}
	vs, err := rb.(interface {
		Versions(context.Context, remote.Handle) ([]remote.Version, error)
	}).Versions(context.Background(), h)
	if err != nil || len(vs) != 1 || vs[0].ID != "null" {
		t.Fatalf("versions in a bucket without versioning: %+v %v", vs, err)
	}
}

// objectLockBackend opens a repository prefix in a fresh bucket with
// Object Lock and a default retention of a day in governance mode.
func objectLockBackend(t *testing.T) (*Backend, *minio.Client) {
	t.Helper()
	ctx := context.Background()
	srv := testenv.MinIO(t)
	c := srv.Client(t)
	cfg := minioConfig(t, "repo")
	cfg.Bucket += "-lock"
	if err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{ObjectLocking: true}); err != nil {
		t.Fatalf("make an Object Lock bucket: %v", err)
	}
	mode, days, unit := minio.Governance, uint(1), minio.Days
	if err := c.SetObjectLockConfig(ctx, cfg.Bucket, &mode, &days, &unit); err != nil {
		t.Fatalf("default retention: %v", err)
	}
	b, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, c
}

func TestRecover(t *testing.T) {
	t.Run("versioning", func(t *testing.T) { testRecover(t, versionedBackend) })
	t.Run("object lock", func(t *testing.T) { testRecover(t, objectLockBackend) })
}

func testRecover(t *testing.T, open func(*testing.T) (*Backend, *minio.Client)) {
	ctx := context.Background()
	b, c := open(t)
	h := func(ft remote.FileType, n string) remote.Handle { return remote.Handle{Type: ft, Name: n} }
	keep := []remote.Handle{{Type: remote.ConfigFile}, h(remote.KeyFile, "k1"), h(remote.PackFile, "0011"), h(remote.IndexFile, "i1"), h(remote.SnapshotFile, "s1"), h(remote.SnapshotFile, "s2")}
	for _, x := range keep {
		if err := b.Save(ctx, x, []byte("good "+x.String())); err != nil {
			t.Fatal(err)
		}
	}
	at := pause()
	// Overwritten, hidden, added; a lock is left alone.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Save(ctx, keep[0], []byte("evil config")))
	must(b.Save(ctx, keep[4], []byte("evil snapshot")))
	must(b.Remove(ctx, keep[2]))
	must(b.Remove(ctx, keep[3]))
	must(b.Save(ctx, h(remote.SnapshotFile, "bogus"), []byte("bogus")))
	must(b.Save(ctx, h(remote.PackFile, "00ff"), []byte("bogus")))
	must(b.Save(ctx, h(remote.LockFile, "l1"), []byte("lock")))

	plan, err := b.PlanRecover(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, s := range plan.Steps {
		steps = append(steps, string(s.Action)+" "+strings.TrimPrefix(s.Key, "repo/"))
	}
	want := "hide snapshots/bogus|restore config|restore data/00/0011|restore index/i1|restore snapshots/s1|hide data/00/00ff"
	if got := strings.Join(steps, "|"); got != want {
		t.Fatalf("plan:\n got %s\nwant %s", got, want)
	}
	if plan.Unchanged[remote.KeyFile] != 1 || plan.Unchanged[remote.SnapshotFile] != 1 {
		t.Fatalf("unchanged: %v", plan.Unchanged)
	}
	var done int
	if err := b.ApplyRecover(ctx, plan, func(RecoverStep) { done++ }); err != nil || done != len(plan.Steps) {
		t.Fatalf("apply: %v after %d steps", err, done)
	}
	for _, x := range keep {
		if got := load(t, b, x); got != "good "+x.String() {
			t.Errorf("%s after recover: %q", x, got)
		}
	}
	for _, x := range []remote.Handle{h(remote.SnapshotFile, "bogus"), h(remote.PackFile, "00ff")} {
		if _, err := b.Stat(ctx, x); !remote.IsNotFound(err) {
			t.Errorf("%s after recover: %v, want hidden", x, err)
		}
	}
	if _, err := b.Stat(ctx, h(remote.LockFile, "l1")); err != nil {
		t.Errorf("recover touched a lock: %v", err)
	}
	// The attacker's versions are still there, as older versions.
	n := 0
	for obj := range c.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: "repo/snapshots/bogus", WithVersions: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		n++
	}
	if n != 2 {
		t.Errorf("bogus snapshot has %d versions after recover, want its data and a delete marker", n)
	}
	// Idempotent: a second plan is empty.
	again, err := b.PlanRecover(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Steps) != 0 {
		t.Fatalf("second recover plans %d steps: %+v", len(again.Steps), again.Steps)
	}
}

func TestLoadVersionErrors(t *testing.T) {
	b, _ := versionedBackend(t)
	_, err := b.LoadVersion(context.Background(), remote.Handle{Type: remote.KeyFile, Name: "k"}, "", 0, 0)
	if !errors.Is(err, remote.ErrPermanent) {
		t.Fatalf("empty version ID: %v", err)
	}
	_, err = b.LoadVersion(context.Background(), remote.Handle{Type: remote.KeyFile, Name: "k"}, "00000000-0000-0000-0000-000000000000", 0, 0)
	if err == nil {
		t.Fatal("load of a version that does not exist succeeded")
	}
}

// countingTransport counts versioned listings.
type countingTransport struct {
	mu       sync.Mutex
	listings int
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, ok := req.URL.Query()["versions"]; ok && req.Method == http.MethodGet {
		c.mu.Lock()
		c.listings++
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(req)
}

func TestAsOfManyLookupsListTheFolder(t *testing.T) {
	ctx := context.Background()
	srv := testenv.MinIO(t)
	cfg := minioConfig(t, "repo")
	if err := srv.Client(t).EnableVersioning(ctx, cfg.Bucket); err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{}
	b, err := Open(ctx, cfg, WithTransport(ct))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const n = 60
	h := func(i int) remote.Handle { return remote.Handle{Type: remote.PackFile, Name: fmt.Sprintf("%04x", i)} }
	for i := range n {
		if err := b.Save(ctx, h(i), []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	at := pause()
	for i := range n {
		if err := b.Save(ctx, h(i), []byte("new!")); err != nil {
			t.Fatal(err)
		}
	}
	v, err := b.AsOf(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	ct.mu.Lock()
	ct.listings = 0
	ct.mu.Unlock()
	for i := range n {
		if got := load(t, v, h(i)); got != "old" {
			t.Fatalf("%s as of before the overwrite: %q", h(i), got)
		}
	}
	if ct.listings > lookupsBeforeListing+1 {
		t.Fatalf("%d versioned listings for %d reads; want the folder listed once after %d single lookups", ct.listings, n, lookupsBeforeListing)
	}
}

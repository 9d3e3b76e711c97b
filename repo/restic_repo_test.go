package repo_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

// The frozen repository in testdata/restic-repo was written by restic 0.14.0
// (see testdata/README.md). It must keep reading: if a change to the format
// code breaks these tests, escrow has stopped reading restic's repositories.

// resticManifest is what restic itself reported about the frozen repository.
type resticManifest struct {
	Snapshots []struct {
		ID       string         `json:"id"`
		Time     time.Time      `json:"time"`
		Tree     string         `json:"tree"`
		Paths    []string       `json:"paths"`
		Hostname string         `json:"hostname"`
		Parent   string         `json:"parent"`
		Nodes    []manifestNode `json:"nodes"`
	} `json:"snapshots"`
}

type manifestNode struct {
	Path       string      `json:"path"`
	Type       string      `json:"type"`
	Mode       fs.FileMode `json:"mode"`
	MTime      time.Time   `json:"mtime"`
	Size       uint64      `json:"size"`
	SHA256     string      `json:"sha256"`
	Links      uint64      `json:"links"`
	LinkTarget string      `json:"linktarget"`
}

func loadManifest(t *testing.T) resticManifest {
	t.Helper()
	buf, err := os.ReadFile("testdata/restic-repo.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m resticManifest
	if err := json.Unmarshal(buf, &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if len(m.Snapshots) == 0 {
		t.Fatal("manifest lists no snapshots")
	}
	return m
}

// copyTree copies src to dst so that tests can never modify testdata (the
// local backend would, for instance, create missing folders on write).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

func resticPassword(t *testing.T) string {
	t.Helper()
	pw, err := os.ReadFile("testdata/restic-repo.password")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(string(pw), "\r\n") // as restic reads a password file
}

// openResticRepo opens a private copy of the frozen repository.
func openResticRepo(t *testing.T) *repo.Repository {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "restic-repo")
	copyTree(t, "testdata/restic-repo", dir)
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), be, resticPassword(t), repo.Options{})
	if err != nil {
		t.Fatalf("open the restic-written repository: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// TestResticRepo opens the repository once (restic's key costs a second of
// scrypt, more under -race) and runs the checks that need it.
func TestResticRepo(t *testing.T) {
	r := openResticRepo(t)
	t.Run("snapshots and files", func(t *testing.T) { checkSnapshotsAndFiles(t, r) })
	t.Run("packs match index", func(t *testing.T) { checkPacksMatchIndex(t, r) })
}

func checkSnapshotsAndFiles(t *testing.T, r *repo.Repository) {
	ctx := context.Background()
	m := loadManifest(t)
	if v := r.Config().Version; v != 2 {
		t.Fatalf("config version %d, want 2", v)
	}

	// Read order: snapshots before the index.
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != len(m.Snapshots) {
		t.Fatalf("%d snapshots, manifest lists %d", len(snaps), len(m.Snapshots))
	}
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}

	multiBlob := false
	for i, want := range m.Snapshots {
		sn := snaps[i] // both oldest first
		t.Run(want.ID[:8], func(t *testing.T) {
			checkSnapshotHeader(t, sn, want.ID, want.Tree, want.Parent, want.Hostname, want.Time, want.Paths)
			got := map[string]*repo.Node{}
			walkTree(ctx, t, r, *sn.Tree, "/", got)
			wantPaths := map[string]bool{}
			for _, wn := range want.Nodes {
				wantPaths[wn.Path] = true
				n := got[wn.Path]
				if n == nil {
					t.Errorf("%s: missing from the snapshot", wn.Path)
					continue
				}
				checkNode(ctx, t, r, wn, n, got)
				if len(n.Content) > 1 {
					multiBlob = true
				}
			}
			for p := range got {
				if !wantPaths[p] {
					t.Errorf("%s: in the snapshot but not in the manifest", p)
				}
			}
		})
	}
	if !multiBlob {
		t.Error("no file in the frozen repository spans several blobs: the fixture no longer covers chunked files")
	}
}

func checkSnapshotHeader(t *testing.T, sn *repo.Snapshot, id, tree, parent, host string, tm time.Time, paths []string) {
	t.Helper()
	if sn.ID.String() != id {
		t.Errorf("snapshot ID %s, want %s", sn.ID, id)
	}
	if sn.Tree.String() != tree {
		t.Errorf("tree %s, want %s", sn.Tree, tree)
	}
	gotParent := ""
	if sn.Parent != nil {
		gotParent = sn.Parent.String()
	}
	if gotParent != parent {
		t.Errorf("parent %q, want %q", gotParent, parent)
	}
	if sn.Hostname != host {
		t.Errorf("hostname %q, want %q", sn.Hostname, host)
	}
	if !sn.Time.Equal(tm) {
		t.Errorf("time %v, want %v", sn.Time, tm)
	}
	if strings.Join(sn.Paths, "\n") != strings.Join(paths, "\n") {
		t.Errorf("paths %q, want %q", sn.Paths, paths)
	}
}

// walkTree records every node below tree id by its absolute path.
func walkTree(ctx context.Context, t *testing.T, r *repo.Repository, id repo.ID, dir string, out map[string]*repo.Node) {
	t.Helper()
	tree, err := r.LoadTree(ctx, id)
	if err != nil {
		t.Fatalf("tree %s at %s: %v", id.Str(), dir, err)
	}
	for _, n := range tree.Nodes {
		p := path.Join(dir, n.Name)
		out[p] = n
		if n.Type == repo.NodeDir {
			walkTree(ctx, t, r, *n.Subtree, p, out)
		}
	}
}

func checkNode(ctx context.Context, t *testing.T, r *repo.Repository, want manifestNode, n *repo.Node, all map[string]*repo.Node) {
	t.Helper()
	if n.Type != want.Type {
		t.Errorf("%s: type %q, want %q", want.Path, n.Type, want.Type)
		return
	}
	if n.Mode != want.Mode {
		t.Errorf("%s: mode %v, want %v", want.Path, n.Mode, want.Mode)
	}
	if !n.ModTime.Equal(want.MTime) {
		t.Errorf("%s: mtime %v, want %v", want.Path, n.ModTime, want.MTime)
	}
	switch n.Type {
	case repo.NodeSymlink:
		if n.Target() != want.LinkTarget {
			t.Errorf("%s: link target %q, want %q", want.Path, n.Target(), want.LinkTarget)
		}
	case repo.NodeFile:
		if n.Size != want.Size {
			t.Errorf("%s: size %d, want %d", want.Path, n.Size, want.Size)
		}
		h := sha256.New()
		var size uint64
		var buf []byte
		for _, id := range n.Content {
			var err error
			buf, err = r.LoadBlob(ctx, repo.BlobHandle{ID: id, Type: repo.DataBlob}, buf)
			if err != nil {
				t.Errorf("%s: %v", want.Path, err)
				return
			}
			h.Write(buf)
			size += uint64(len(buf))
		}
		if size != want.Size {
			t.Errorf("%s: blobs hold %d bytes, want %d", want.Path, size, want.Size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
			t.Errorf("%s: sha256 %s, want %s", want.Path, got, want.SHA256)
		}
		if want.Links > 1 {
			// restic restores hard links from the inode and link count:
			// as many nodes as links must share this node's inode.
			if n.Links != want.Links {
				t.Errorf("%s: %d links, want %d", want.Path, n.Links, want.Links)
			}
			same := 0
			for _, o := range all {
				if o.Type == repo.NodeFile && o.Inode == n.Inode && o.DeviceID == n.DeviceID {
					same++
				}
			}
			if uint64(same) != want.Links {
				t.Errorf("%s: %d nodes share its inode, want %d", want.Path, same, want.Links)
			}
		}
	}
}

// checkPacksMatchIndex decodes every pack header restic wrote and checks it
// against restic's index: the offsets escrow computes from a header must be
// where restic's index says the blobs are.
func checkPacksMatchIndex(t *testing.T, r *repo.Repository) {
	ctx := context.Background()
	if err := r.LoadIndex(ctx); err != nil {
		t.Fatal(err)
	}
	packs := r.Index().Packs()
	seen := 0
	err := r.Backend().List(ctx, remote.PackFile, func(fi remote.FileInfo) error {
		id, err := repo.ParseID(fi.Name)
		if err != nil {
			return err
		}
		data, err := remote.LoadAll(ctx, r.Backend(), remote.Handle{Type: remote.PackFile, Name: fi.Name})
		if err != nil {
			return err
		}
		if repo.Hash(data) != id {
			t.Errorf("pack %s: content does not hash to its name", id.Str())
		}
		if want, ok := packs[id]; !ok || want != int64(len(data)) {
			t.Errorf("pack %s: %d bytes, index expects %d (listed: %v)", id.Str(), len(data), want, ok)
		}
		blobs, err := r.Key().DecodePack(data, id)
		if err != nil {
			t.Errorf("pack %s: %v", id.Str(), err)
			return nil
		}
		for _, b := range blobs {
			pb, ok := r.Index().Lookup(b.BlobHandle)
			if !ok {
				t.Errorf("pack %s: %s not in the index", id.Str(), b.BlobHandle)
				continue
			}
			if pb != b {
				t.Errorf("pack %s: header says %+v, index says %+v", id.Str(), b, pb)
			}
			if _, err := r.OpenBlob(b, data[b.Offset:b.Offset+b.Length], nil); err != nil {
				t.Errorf("pack %s: %v", id.Str(), err)
			}
		}
		seen++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen != len(packs) {
		t.Errorf("%d pack files, index lists %d", seen, len(packs))
	}
}

func TestResticRepoWrongPassword(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "restic-repo")
	copyTree(t, "testdata/restic-repo", dir)
	be, err := local.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = repo.Open(context.Background(), be, "not-"+resticPassword(t), repo.Options{})
	if !errors.Is(err, repo.ErrWrongPassword) {
		t.Fatalf("got %v, want ErrWrongPassword", err)
	}
}

// TestResticRepoTestdataUnchanged guards the frozen files themselves: the
// tests above work on copies, and nothing may rewrite the originals.
func TestResticRepoTestdataUnchanged(t *testing.T) {
	err := filepath.WalkDir("testdata/restic-repo", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		name := d.Name()
		if name == "config" {
			return nil
		}
		if id := repo.Hash(data).String(); id != name {
			t.Errorf("%s: content hashes to %s: the frozen repository was modified", p, id[:8])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

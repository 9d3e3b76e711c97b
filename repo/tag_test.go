package repo_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/repo"
)

// AddTag writes a tagged copy that names the original and leaves the
// original in place; tagging twice writes nothing more.
func TestAddTag(t *testing.T) {
	ctx := context.Background()
	be, err := local.Create(ctx, filepath.Join(t.TempDir(), "repo"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(ctx, be, "pw", repo.Options{KDF: repo.KDFParams{N: 1024, R: 8, P: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tree := repo.Hash([]byte("tree"))
	sn := &repo.Snapshot{Time: time.Now(), Tree: &tree, Paths: []string{"/srv"}, Hostname: "h", Tags: []string{"site"}}
	if _, err := r.SaveSnapshot(ctx, sn); err != nil {
		t.Fatal(err)
	}
	tagged, err := r.AddTag(ctx, sn, repo.TagPreDeletion)
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.AddTag(ctx, tagged, repo.TagPreDeletion)
	if err != nil || again.ID != tagged.ID {
		t.Fatalf("tagging a tagged snapshot: %v, %v", again, err)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots, want the original and its tagged copy", len(snaps))
	}
	for _, s := range snaps {
		switch s.ID {
		case sn.ID:
			if s.HasTag(repo.TagPreDeletion) || s.Original != nil {
				t.Errorf("the original changed: %+v", s)
			}
		case tagged.ID:
			if !slices.Equal(s.Tags, []string{"site", repo.TagPreDeletion}) || s.Original == nil || *s.Original != sn.ID || *s.Tree != tree {
				t.Errorf("tagged copy %+v", s)
			}
		default:
			t.Errorf("unexpected snapshot %s", s.ID)
		}
	}
	if sn.HasTag(repo.TagPreDeletion) {
		t.Error("AddTag changed the caller's snapshot")
	}
}

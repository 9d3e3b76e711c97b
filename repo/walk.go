package repo

import (
	"context"
	"fmt"
	"path"
	"strings"
)

// WalkFunc is called for each node below a tree with its slash-separated
// path from the snapshot root ("/var/www/site/index.php"). Returning
// ErrSkipDir for a directory skips its contents.
type WalkFunc func(p string, n *Node) error

// ErrSkipDir tells Walk not to descend into a directory.
var ErrSkipDir = fmt.Errorf("skip this directory")

// Walk visits the nodes of tree id depth-first in name order.
func (r *Repository) Walk(ctx context.Context, id ID, prefix string, fn WalkFunc) error {
	return r.walk(ctx, id, prefix, fn, nil)
}

// WalkPast is Walk, except that the error of a folder below the root (its
// tree could not be loaded, or a walk below it failed) goes to past, with
// the folder's path: when past returns nil the walk goes on after that
// folder. A reader can so pass over damage and keep the rest.
func (r *Repository) WalkPast(ctx context.Context, id ID, prefix string, fn WalkFunc, past func(p string, err error) error) error {
	return r.walk(ctx, id, prefix, fn, past)
}

func (r *Repository) walk(ctx context.Context, id ID, prefix string, fn WalkFunc, past func(string, error) error) error {
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		return fmt.Errorf("%s: %w", orRoot(prefix), err)
	}
	for _, n := range t.Nodes {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := path.Join("/", prefix, n.Name)
		err := fn(p, n)
		if err == ErrSkipDir {
			continue
		}
		if err != nil {
			return err
		}
		if n.Type != NodeDir {
			continue
		}
		err = r.walk(ctx, *n.Subtree, p, fn, past)
		if err != nil && past != nil && ctx.Err() == nil {
			err = past(p, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// FindNode returns the node at p (slash-separated, relative to the snapshot
// root; a leading slash is optional) in the snapshot's tree. The root itself
// is returned as a directory node named "/".
func (r *Repository) FindNode(ctx context.Context, sn *Snapshot, p string) (*Node, error) {
	clean := path.Clean("/" + p)
	node := &Node{Name: "/", Type: NodeDir, Subtree: sn.Tree}
	if clean == "/" {
		return node, nil
	}
	walked := ""
	for _, name := range strings.Split(strings.TrimPrefix(clean, "/"), "/") {
		if node.Type != NodeDir {
			return nil, fmt.Errorf("%s is not a directory in snapshot %s", orRoot(walked), sn.ID.Str())
		}
		t, err := r.LoadTree(ctx, *node.Subtree)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", orRoot(walked), err)
		}
		walked += "/" + name
		node = t.Find(name)
		if node == nil {
			return nil, fmt.Errorf("%s: %w in snapshot %s", walked, ErrNotInSnapshot, sn.ID.Str())
		}
	}
	return node, nil
}

// ErrNotInSnapshot means a path does not exist in a snapshot.
var ErrNotInSnapshot = fmt.Errorf("no such file or directory")

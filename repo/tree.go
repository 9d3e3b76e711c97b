package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Node types, as restic names them.
const (
	NodeFile    = "file"
	NodeDir     = "dir"
	NodeSymlink = "symlink"
	NodeDev     = "dev"
	NodeCharDev = "chardev"
	NodeFIFO    = "fifo"
	NodeSocket  = "socket"
)

// Node is one entry of a directory tree, in restic's JSON form.
type Node struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Mode       fs.FileMode `json:"mode,omitempty"`
	ModTime    time.Time   `json:"mtime,omitempty"`
	AccessTime time.Time   `json:"atime,omitempty"`
	ChangeTime time.Time   `json:"ctime,omitempty"`
	UID        uint32      `json:"uid"`
	GID        uint32      `json:"gid"`
	User       string      `json:"user,omitempty"`
	Group      string      `json:"group,omitempty"`
	Inode      uint64      `json:"inode,omitempty"`
	DeviceID   uint64      `json:"device_id,omitempty"`
	Size       uint64      `json:"size,omitempty"`
	Links      uint64      `json:"links,omitempty"`
	LinkTarget string      `json:"linktarget,omitempty"`
	// LinkTargetRaw carries link targets that are not valid UTF-8, which a
	// JSON string would silently mangle.
	LinkTargetRaw      []byte              `json:"linktarget_raw,omitempty"`
	ExtendedAttributes []ExtendedAttribute `json:"extended_attributes,omitempty"`
	Device             uint64              `json:"device,omitempty"`
	// Content must be present (possibly empty) for files: restic treats a
	// null list as damage. It is null for everything else.
	Content []ID `json:"content"`
	Subtree *ID  `json:"subtree,omitempty"`
}

// ExtendedAttribute is a name and value pair.
type ExtendedAttribute struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// Tree is a directory's list of nodes, sorted by name.
type Tree struct {
	Nodes []*Node `json:"nodes"`
}

// Insert adds a node, keeping the order.
func (t *Tree) Insert(n *Node) error {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= n.Name })
	if i < len(t.Nodes) && t.Nodes[i].Name == n.Name {
		return fmt.Errorf("duplicate name %q in tree", n.Name)
	}
	t.Nodes = append(t.Nodes, nil)
	copy(t.Nodes[i+1:], t.Nodes[i:])
	t.Nodes[i] = n
	return nil
}

// Find returns the node called name.
func (t *Tree) Find(name string) *Node {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= name })
	if i < len(t.Nodes) && t.Nodes[i].Name == name {
		return t.Nodes[i]
	}
	return nil
}

func (t *Tree) encode() ([]byte, error) {
	if t.Nodes == nil {
		t.Nodes = []*Node{}
	}
	buf, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode tree: %w", err)
	}
	return append(buf, '\n'), nil
}

// DecodeTree parses a tree blob and checks what later code relies on: valid
// types, names that cannot escape a restore target, sorted unique names, and
// the references each type needs.
func DecodeTree(buf []byte) (*Tree, error) {
	var t Tree
	if err := json.Unmarshal(buf, &t); err != nil {
		return nil, fmt.Errorf("decode tree: %w", err)
	}
	for i, n := range t.Nodes {
		if n == nil {
			return nil, fmt.Errorf("tree: node %d is null", i)
		}
		if err := validName(n.Name); err != nil {
			return nil, fmt.Errorf("tree: %w", err)
		}
		if i > 0 && t.Nodes[i-1].Name >= n.Name {
			return nil, fmt.Errorf("tree: nodes %q and %q are not sorted or not unique", t.Nodes[i-1].Name, n.Name)
		}
		switch n.Type {
		case NodeDir:
			if n.Subtree == nil {
				return nil, fmt.Errorf("tree: dir %q has no subtree", n.Name)
			}
		case NodeFile:
			if n.Content == nil {
				return nil, fmt.Errorf("tree: file %q has no content list", n.Name)
			}
		case NodeSymlink, NodeDev, NodeCharDev, NodeFIFO, NodeSocket:
		default:
			return nil, fmt.Errorf("tree: node %q has invalid type %q", n.Name, n.Type)
		}
	}
	return &t, nil
}

func validName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("invalid node name %q", name)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return fmt.Errorf("invalid node name %q", name)
		}
	}
	return nil
}

// MarshalJSON writes the node as restic does. A file name is any byte string
// but a JSON string holds only valid UTF-8 (encoding/json would replace the
// rest with U+FFFD), so the name is stored in Go's quoted form without the
// quotes: "caf\xe9", "a\nb". restic reads every name through strconv.Unquote,
// so a name with a quote, a backslash or a newline stored any other way
// would make restic fail on the whole tree. A link target that is not valid
// UTF-8 also goes into linktarget_raw as base64 bytes (restic 0.17 and
// later read that field; older ones see the mangled linktarget).
func (n *Node) MarshalJSON() ([]byte, error) {
	type plain Node
	nj := plain(*n)
	q := strconv.Quote(n.Name)
	nj.Name = q[1 : len(q)-1]
	if nj.LinkTargetRaw == nil && !utf8.ValidString(n.LinkTarget) {
		nj.LinkTargetRaw = []byte(n.LinkTarget)
	}
	return json.Marshal(&nj)
}

// UnmarshalJSON reads a node written by MarshalJSON or by restic. A name
// that does not unquote was written raw by an escrow before names were
// quoted; it is taken as it stands.
func (n *Node) UnmarshalJSON(data []byte) error {
	type plain Node
	if err := json.Unmarshal(data, (*plain)(n)); err != nil {
		return err
	}
	if name, err := strconv.Unquote(`"` + n.Name + `"`); err == nil {
		n.Name = name
	}
	return nil
}

// Target returns the symlink's target, preferring the raw bytes.
func (n *Node) Target() string {
	if n.LinkTargetRaw != nil {
		return string(n.LinkTargetRaw)
	}
	return n.LinkTarget
}

// LoadTree loads and decodes a tree blob.
func (r *Repository) LoadTree(ctx context.Context, id ID) (*Tree, error) {
	buf, err := r.LoadBlob(ctx, BlobHandle{ID: id, Type: TreeBlob}, nil)
	if err != nil {
		return nil, err
	}
	t, err := DecodeTree(buf)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w: %v", id.Str(), ErrCorrupt, err)
	}
	return t, nil
}

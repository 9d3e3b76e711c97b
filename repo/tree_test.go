package repo

import (
	"bytes"
	"strings"
	"testing"
)

// Names are stored as restic stores them: Go-quoted without the quotes, so
// that any bytes survive a JSON string and restic's strconv.Unquote reads
// them back. Link targets that are not UTF-8 also go into linktarget_raw.
func TestNodeNamesRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name, stored string // stored: the JSON string's content
	}{
		{"index.php", `index.php`},
		{"caf\xe9.php", `caf\\xe9.php`},
		{"line\nbreak", `line\\nbreak`},
		{`quote"back\slash`, `quote\\\"back\\\\slash`},
		{"emoji-\U0001F600", "emoji-\U0001F600"},
		{"nbsp\u00a0", `nbsp\\u00a0`},
	} {
		target := "../" + tc.name
		tree := &Tree{Nodes: []*Node{{Name: tc.name, Type: NodeSymlink, LinkTarget: target}}}
		buf, err := tree.encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(buf, []byte(`"name":"`+tc.stored+`"`)) {
			t.Errorf("%q stored as %s, want the name %s", tc.name, buf, tc.stored)
		}
		raw := bytes.Contains(buf, []byte(`"linktarget_raw"`))
		if raw == (strings.ToValidUTF8(target, "") == target) {
			t.Errorf("%q: linktarget_raw present %v: %s", tc.name, raw, buf)
		}
		got, err := DecodeTree(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n := got.Nodes[0]; n.Name != tc.name || n.Target() != target {
			t.Errorf("%q came back as %q -> %q", tc.name, n.Name, n.Target())
		}
	}
}

// Trees written before names were quoted hold some names raw; those that do
// not unquote are read as they stand.
func TestNodeNamesWrittenRaw(t *testing.T) {
	got, err := DecodeTree([]byte(`{"nodes":[{"name":"a\"b","type":"file","content":[]},{"name":"tab\tx","type":"file","content":[]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Nodes[0].Name != `a"b` || got.Nodes[1].Name != "tab\tx" {
		t.Errorf("raw names read as %q and %q", got.Nodes[0].Name, got.Nodes[1].Name)
	}
}

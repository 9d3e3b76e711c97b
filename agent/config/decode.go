package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder walks yaml.Nodes into a Config. Every value is checked for its
// kind here, so that messages say "expected a list" with the line, instead
// of yaml's Go type names.
type decoder struct {
	*problems
}

// field is one key of a mapping and how to decode its value; path is the
// field's full path, such as "sources[0].path".
type field struct {
	key    string
	decode func(v *yaml.Node, path string)
}

// mapping decodes a mapping by its fields and reports unknown, repeated and
// inline-secret keys. A null value (a key with nothing after it) leaves the
// defaults.
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) {
	line, n := n.Line, resolve(n) // an alias is reported where it is used
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.add(line, path, "expected key: value lines, got %s", describe(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.note(k.Line, path, "expected a field name, got %s", describe(k))
			continue
		}
		key, p := k.Value, join(path, k.Value)
		if k.Tag == "!!merge" {
			d.note(k.Line, path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		if line, ok := seen[key]; ok {
			d.add(k.Line, p, "given twice (first on line %d); keep one", line)
			continue
		}
		seen[key] = k.Line
		known := slices.IndexFunc(fields, func(f field) bool { return f.key == key })
		switch {
		case known >= 0:
			d.lines[p] = k.Line
			fields[known].decode(v, p)
		case isSecretKey(key):
			// The value is never echoed: it is a secret.
			d.add(k.Line, p, "secrets do not belong in the configuration file: put it in a file readable only by root (chmod 600) and give that file's path as %s_file", key)
		default:
			h, near := hint(key, path, fields)
			d.note(k.Line, path, "unknown field %q%s", key, h)
			if near != "" {
				// A misspelled required field is not also "missing".
				d.mark(join(path, near))
			}
		}
	}
}

// isSecretKey reports keys under which people write secrets inline; each has
// a _file counterpart.
func isSecretKey(key string) bool {
	switch key {
	case "password", "secret_access_key", "session_token":
		return true
	}
	return false
}

// seq decodes each item of a list.
func (d *decoder) seq(n *yaml.Node, path string, item func(v *yaml.Node, path string)) {
	line, n := n.Line, resolve(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.add(line, path, "expected a list (lines starting with \"- \"), got %s", describe(n))
		return
	}
	for i, v := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.lines[p] = v.Line
		item(resolve(v), p)
	}
}

// scalar returns a single value's text, or ok=false after reporting a list
// or mapping. Null is "" and ok.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	line, n := n.Line, resolve(n)
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		d.add(line, path, "expected a single value, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (d *decoder) str(dst *string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		if s, ok := d.scalar(n, path); ok {
			*dst = s
		}
	}
}

func (d *decoder) strs(dst *[]string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		var out []string
		d.seq(n, path, func(v *yaml.Node, p string) {
			s, ok := d.scalar(v, p)
			switch {
			case !ok:
			case s == "":
				d.add(v.Line, p, "empty entry; remove it")
			default:
				out = append(out, s)
			}
		})
		*dst = out
	}
}

func (d *decoder) boolean(dst *bool) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		line, n := n.Line, resolve(n)
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.add(line, path, "expected true or false, got %s", describe(n))
			return
		}
		*dst = strings.EqualFold(n.Value, "true")
	}
}

func (d *decoder) integer(dst *int, lo, hi int) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		v, err := strconv.Atoi(s)
		switch {
		case err != nil:
			d.add(n.Line, path, "expected a whole number, got %s", describe(n))
		case v < lo || v > hi:
			d.add(n.Line, path, "%d is out of range; use a number from %d to %d", v, lo, hi)
		default:
			*dst = v
		}
	}
}

// oneOf decodes a string that must be one of the given words.
func (d *decoder) oneOf(dst *string, words ...string) func(*yaml.Node, string) {
	return func(n *yaml.Node, path string) {
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		if !slices.Contains(words, s) {
			d.add(n.Line, path, "%q is not one of %s", s, strings.Join(words, ", "))
			return
		}
		*dst = s
	}
}

// hint suggests the field the user probably meant: a near spelling in the
// same mapping (returned as near), or the section where a misplaced field
// belongs.
func hint(key, path string, fields []field) (text, near string) {
	best, bestDist := "", 0
	for _, f := range fields {
		dist := distance(normalizeKey(key), normalizeKey(f.key))
		if dist <= max(1, len(f.key)/3) && (best == "" || dist < bestDist) {
			best, bestDist = f.key, dist
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best), best
	}
	here := sectionName(path)
	var where []string
	for _, s := range sections() {
		if s.name != here && slices.Contains(s.keys, key) {
			where = append(where, s.where)
		}
	}
	if len(where) > 0 {
		return " (it belongs " + strings.Join(where, " or ") + ")", ""
	}
	return "", ""
}

func normalizeKey(s string) string {
	return strings.ToLower(strings.ReplaceAll(s, "-", "_"))
}

// distance is the edit distance between two strings, counting a swap of
// neighbours as one edit (optimal string alignment).
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// section is a mapping of the schema: its name as sectionName gives it, its
// keys, and how to tell a user where it is.
type section struct {
	name, where string
	keys        []string
}

// sections lists the schema's mappings from the Config struct's tags, which
// are the single record of the key names.
func sections() []section {
	top := reflect.TypeFor[Config]()
	out := []section{{name: "", where: "at the top level", keys: tagKeys(top)}}
	for i := range top.NumField() {
		f := top.Field(i)
		name := f.Tag.Get("yaml")
		switch {
		case f.Type.Kind() == reflect.Struct:
			out = append(out, section{name: name, where: "under " + name + ":", keys: tagKeys(f.Type)})
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out = append(out, section{name: name + "[]", where: "in each entry of " + name + ":", keys: tagKeys(f.Type.Elem())})
		}
	}
	return out
}

func tagKeys(t reflect.Type) []string {
	var keys []string
	for i := range t.NumField() {
		if k := t.Field(i).Tag.Get("yaml"); k != "" && k != "-" {
			keys = append(keys, k)
		}
	}
	return keys
}

// sectionName maps a path such as "sources[3]" to its section, "sources[]".
func sectionName(path string) string {
	if i := strings.IndexByte(path, '['); i >= 0 {
		return path[:i] + "[]"
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// resolve follows aliases (*name) to their anchored node. yaml.v3 rejects an
// anchor that contains itself, so this ends.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node holds, for "expected X, got Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "key: value lines"
	case yaml.ScalarNode:
		if isNull(n) {
			return "nothing"
		}
		return strconv.Quote(n.Value)
	}
	return "something else"
}

package kit

import (
	"reflect"
	"testing"
)

// FuzzParse holds the parser to its promise on untrusted text (a kit may
// come from anywhere: a scan, a retyped page, a mangled copy): it never
// panics, and what it accepts writes back into a kit that parses to the
// same thing.
func FuzzParse(f *testing.F) {
	for _, k := range []*Kit{s3Kit(), {Repository: "/srv/r", RepositoryID: testID, Password: " x\ny "}} {
		text, err := k.MarshalText()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(text)
		compact, _ := k.Compact()
		f.Add(compact)
	}
	f.Add([]byte("escrow recovery kit v7\n"))
	f.Add([]byte("escrow recovery kit v1\nrepository: \"/a\"\nrepository-id: " + testID + "\npassword: \"\\x00\"\ncreated: 2026-01-02T03:04:05.5+01:00\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := Parse(data)
		if err != nil {
			return
		}
		if err := k.Check(); err != nil {
			t.Fatalf("Parse accepted a kit Check refuses: %v", err)
		}
		for _, compact := range []bool{false, true} {
			text, err := k.format(!compact)
			if err != nil {
				t.Fatalf("a parsed kit does not write: %v", err)
			}
			again, err := Parse(text)
			if err != nil {
				t.Fatalf("a written kit does not parse: %v\n%s", err, text)
			}
			if !again.Created.Equal(k.Created) {
				t.Fatalf("created changed: %v, then %v", k.Created, again.Created)
			}
			a, b := *k, *again
			a.Created, b.Created, a.Ignored, b.Ignored = again.Created, again.Created, nil, nil
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("kit changed on a round trip:\n%+v\n%+v", a, b)
			}
		}
	})
}

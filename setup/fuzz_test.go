package setup

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/internal/yamlfuzz"
)

// FuzzParsePreseed: a preseed file comes from a reseller's tooling and is
// read unattended as root. ParsePreseed must not panic on any text, must
// refuse with PreseedErrors naming a line of the file (or none), and the
// configuration it leads to must go through the agent's parser.
func FuzzParsePreseed(f *testing.F) {
	if doc, err := os.ReadFile("../docs/resellers.md"); err == nil {
		if _, rest, ok := strings.Cut(string(doc), "```yaml\n"); ok {
			if example, _, ok := strings.Cut(rest, "```"); ok {
				f.Add([]byte(example))
			}
		}
	}
	f.Add([]byte("repository: /srv/escrow\npassword: secret\nsources:\n  - path: /var/www\n"))
	f.Add([]byte("repository: s3:https://s3.example.com/b\nobject_lock: true\ns3:\n  access_key_id: AK\n  secret_access_key: SK\n"))
	f.Add([]byte("sources: [{path: /a, exclude: [x]}]\ndatabases: [{type: postgres, name: db}]\n"))
	f.Add([]byte("unknown: 1\n"))
	f.Add([]byte("- a\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return // a preseed is a few KB; bigger inputs only slow the fuzzer
		}
		defer yamlfuzz.HangGuard(data)()
		p, err := ParsePreseed("preseed.yaml", data)
		if err != nil {
			lines := yamlfuzz.Lines(data)
			for _, e := range yamlfuzz.Unjoin(err) {
				var pe *PreseedError
				if !errors.As(e, &pe) {
					t.Fatalf("ParsePreseed returned %T, not *PreseedError: %v", e, e)
				}
				if pe.Msg == "" || pe.Line < 0 || pe.Line > lines+1 {
					t.Fatalf("problem %+v (the file has %d lines)", pe, lines)
				}
			}
			return
		}
		for _, field := range []string{"repository", "sources[0].path", "databases[0].name", "kit.command"} {
			_ = p.Line(field)
		}
		// The configuration the answers make: setup checks it with
		// config.Parse before writing anything and maps its problems back
		// to the preseed's lines, so a refusal is fine, a panic is not.
		text, err := ConfigText(nil, &p.Answers, Paths{ConfigFile: "/etc/escrow/escrow.yaml"})
		if err != nil {
			return
		}
		_, _ = config.Parse("/etc/escrow/escrow.yaml", text)
	})
}

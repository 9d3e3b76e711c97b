package config

import (
	"errors"
	"testing"

	"github.com/escrow-backup/escrow/internal/yamlfuzz"
)

// FuzzParseConfig: the agent's configuration is typed by people and written by
// tools (setup, resellers' preseeds). Parse must not panic on any text,
// must refuse with Errors that each name a line of the file (or none), and
// what it accepts must be complete.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(Example()))
	f.Add([]byte("repository: /srv/escrow\npassword_file: /etc/escrow/pw\nsources:\n  - path: /var/www\n"))
	f.Add([]byte("repository: s3:https://s3.example.com/b/p\npassword_file: pw\ns3:\n  access_key_id: AK\n  secret_access_key_file: sk\n" +
		"sources:\n  - path: /a\n    exclude: ['*.tmp']\ndatabases:\n  - type: mariadb\n    name: shop\n    every: 1h\n" +
		"schedule:\n  quiet_period: 10s\n  max_delay: 60s\nlimits:\n  parallelism: 4\nlog:\n  format: json\n  level: debug\n"))
	f.Add([]byte("# only a comment\n"))
	f.Add([]byte("---\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("sources: !!binary aGVsbG8=\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return // a configuration is a few KB; bigger inputs only slow the fuzzer
		}
		defer yamlfuzz.HangGuard(data)()
		c, err := Parse("escrow.yaml", data)
		if err != nil {
			lines := yamlfuzz.Lines(data)
			for _, e := range yamlfuzz.Unjoin(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Fatalf("Parse returned %T, not *Error: %v", e, e)
				}
				if ce.Msg == "" || ce.Line < 0 || ce.Line > lines+1 {
					t.Fatalf("problem %+v (the file has %d lines)", ce, lines)
				}
			}
			return
		}
		if c == nil || c.Repository == "" || len(c.Sources)+len(c.Databases) == 0 {
			t.Fatalf("Parse accepted an incomplete configuration: %+v", c)
		}
	})
}

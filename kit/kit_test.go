package kit

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

const testID = "3fa2c9e0b17d4c55a8e6f0d2b9c41e7a6d5f08b3c2e1a9d7f6b5c4e3d2a1f0e9"

func s3Kit() *Kit {
	return &Kit{
		Repository:   "s3:https://s3.example.com/backups/site1",
		Region:       "eu-central-1",
		RepositoryID: testID,
		KeyID:        "9b1c0d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c",
		Created:      time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC),
		Host:         "web1.example.com",
		Password:     "correct horse battery staple",
		AccessKeyID:  "ESCROWEXAMPLEKEY",
	}
}

func TestGolden(t *testing.T) {
	with := s3Kit()
	with.AccessKeyID, with.SecretAccessKey = "READONLYEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	local := &Kit{Repository: "/mnt/usb/escrow", RepositoryID: testID, Host: "web1", Password: " leading and trailing ", Created: s3Kit().Created}
	for name, k := range map[string]*Kit{"kit-s3.txt": s3Kit(), "kit-s3-credentials.txt": with, "kit-local.txt": local} {
		t.Run(name, func(t *testing.T) {
			got, err := k.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			golden := "testdata/" + name
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./kit -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("kit text changed; if on purpose, run go test ./kit -update\n--- got\n%s\n--- want\n%s", got, want)
			}
			back, err := Parse(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, k) {
				t.Errorf("parsed golden kit:\n%+v\nwant\n%+v", back, k)
			}
		})
	}
}

func TestValuesSurvive(t *testing.T) {
	for _, pw := range []string{
		"plain", " space first", "space last ", `"quoted"`, "tab\tinside", "new\nline", "unicode: пароль ✓",
		"\u00a0nbsp", "#hash", "colon: inside", `back\slash`, "\x00nul", string([]byte{0xff, 0xfe}), "\r",
	} {
		k := s3Kit()
		k.Password = pw
		k.Host = pw
		text, err := k.MarshalText()
		if err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		back, err := Parse(text)
		if err != nil {
			t.Fatalf("%q: %v\n%s", pw, err, text)
		}
		if back.Password != pw || back.Host != pw {
			t.Errorf("password %q came back as %q (host %q)", pw, back.Password, back.Host)
		}
	}
}

func TestParseLenient(t *testing.T) {
	text := "\xef\xbb\xbf\r\n  Escrow Recovery Kit V1\r\n# a comment\r\n\r\nRepository: /srv/repo\r\n" +
		"repository-id:   " + testID + "  \r\npassword: hunter2\r\nfuture-field: something\r\n"
	k, err := Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if k.Repository != "/srv/repo" || k.Password != "hunter2" || k.RepositoryID != testID || !reflect.DeepEqual(k.Ignored, []string{"future-field"}) {
		t.Fatalf("%+v", k)
	}
}

func TestParseErrors(t *testing.T) {
	good := "escrow recovery kit v1\nrepository: s3:https://s3.example.com/backups/site1\nrepository-id: " + testID + "\npassword: pw\n"
	for _, tc := range []struct{ name, text, msg string }{
		{"empty", "", "it is empty"},
		{"not a kit", "hello\n", `the first line must be "escrow recovery kit v1"`},
		{"binary", "\xff\xfe\x00", "not UTF-8"},
		{"no version", "escrow recovery kit\n", "names no version"},
		{"huge", good + strings.Repeat("#", MaxSize), "far more than a kit holds"},
		{"no password", strings.Replace(good, "password: pw\n", "", 1), "the password line is missing"},
		{"no repository", strings.Replace(good, "repository: ", "repo: ", 1), "the repository line is missing"},
		{"short id", strings.Replace(good, testID, testID[:10], 1), "not 64 lowercase hex digits"},
		{"duplicate", good + "password: other\n", "line 5: password given again (first on line 4)"},
		{"no colon", good + "just words\n", `line 5: expected "name: value"`},
		{"bad quote", good + `host: "unclosed` + "\n", "line 5: host: the quoted value is not closed"},
		{"relative dir", strings.Replace(good, "s3:https://s3.example.com/backups/site1", "repo", 1), "neither an absolute directory nor an s3: address"},
		{"bad s3", strings.Replace(good, "s3.example.com/backups", "s3.example.com/Bad_Bucket", 1), "invalid S3 address"},
		{"bucket mismatch", good + "bucket: other\n", `line 5: bucket "other" does not match the repository address`},
		{"secret without id", good + "secret-access-key: x\n", "secret-access-key without access-key-id"},
		{"bad time", good + "created: yesterday\n", "line 5: created: not a time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text))
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want an error containing %q", err, tc.msg)
			}
		})
	}
}

func TestUnknownVersion(t *testing.T) {
	_, err := Parse([]byte("escrow recovery kit v2\nrepository: /x\nwhatever: a v2 field\n"))
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Version != 2 || !strings.Contains(err.Error(), "reads version 1 only") {
		t.Fatalf("got %v", err)
	}
}

func TestMarshalRefusesIncompleteKits(t *testing.T) {
	k := s3Kit()
	k.Password = ""
	if _, err := k.MarshalText(); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("got %v", err)
	}
}

func TestEssentials(t *testing.T) {
	k := s3Kit()
	e := k.Essentials()
	if e.AccessKeyID != "" || e.Host != "" || e.Password != k.Password || e.Region != k.Region {
		t.Fatalf("essentials without a secret: %+v", e)
	}
	k.SecretAccessKey = "s"
	if e := k.Essentials(); e.AccessKeyID != k.AccessKeyID || e.SecretAccessKey != "s" {
		t.Fatalf("essentials with a secret: %+v", e)
	}
	text, err := k.Essentials().Compact()
	if err != nil || strings.Contains(string(text), "#") {
		t.Fatalf("compact kit: %v\n%s", err, text)
	}
}

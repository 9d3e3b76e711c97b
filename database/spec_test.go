package database

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

func TestDBParseURL(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want Spec
		err  string
	}{
		{"mysql://shop@db.example.com:3307/shop", Spec{Type: MySQL, Host: "db.example.com", Port: 3307, User: "shop", Databases: []string{"shop"}}, ""},
		{"mariadb://root@127.0.0.1/wp", Spec{Type: MySQL, Host: "127.0.0.1", User: "root", Databases: []string{"wp"}}, ""},
		{"mysql:///shop?socket=/run/mysqld/mysqld.sock", Spec{Type: MySQL, Socket: "/run/mysqld/mysqld.sock", Databases: []string{"shop"}}, ""},
		{"postgres://app@[::1]:5433/app", Spec{Type: Postgres, Host: "::1", Port: 5433, User: "app", Databases: []string{"app"}}, ""},
		{"postgresql:///app?host=/var/run/postgresql", Spec{Type: Postgres, Socket: "/var/run/postgresql", Databases: []string{"app"}}, ""},
		{"sqlite:///var/www/app/database/database.sqlite", Spec{Type: SQLite, Path: "/var/www/app/database/database.sqlite"}, ""},
		{"mysql://shop:hunter2@db/shop", Spec{}, "holds a password"},
		{"mysql://db.example.com/", Spec{}, "names no database"},
		{"mysql://db/shop?host=/tmp", Spec{}, `unknown parameter "host"`},
		{"mysql://db:99999/shop", Spec{}, "invalid port"},
		{"sqlite://relative.db", Spec{}, "absolute"},
		{"oracle://db/x", Spec{}, "unknown database type"},
		{"shop", Spec{}, "unknown database type"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			got, err := ParseURL(tc.url)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tc.err)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, %v; want %#v", got, err, tc.want)
			}
		})
	}
}

func TestDBDumpPath(t *testing.T) {
	for _, tc := range []struct {
		t    Type
		name string
		path string
	}{
		{MySQL, "shop", "/databases/mysql/shop.sql"},
		{Postgres, GlobalsName, "/databases/postgres/globals.sql"},
		{SQLite, "app", "/databases/sqlite/app.sql"},
		{Postgres, "odd/name 100%", "/databases/postgres/odd%2Fname 100%25.sql"},
		{MySQL, "..", "/databases/mysql/%2E%2E.sql"},
	} {
		if got := DumpPath(tc.t, tc.name); got != tc.path {
			t.Errorf("DumpPath(%s, %q) = %q, want %q", tc.t, tc.name, got, tc.path)
		}
		typ, name, ok := ParseDumpPath(tc.path)
		if !ok || typ != tc.t || name != tc.name {
			t.Errorf("ParseDumpPath(%q) = %s %q %v", tc.path, typ, name, ok)
		}
	}
	for _, p := range []string{"/databases/shop.sql", "/var/www/x.sql", "/databases/oracle/x.sql", "/databases/mysql/a/b.sql", "/databases/mysql/x.txt", "/databases/mariadb/x.sql"} {
		if _, _, ok := ParseDumpPath(p); ok {
			t.Errorf("ParseDumpPath(%q) accepted it", p)
		}
	}
}

func TestDBVersionTags(t *testing.T) {
	for in, want := range map[string]string{
		"10.11.6-MariaDB-0+deb12u1":        "server:mariadb-10.11.6",
		"5.5.5-10.3.39-MariaDB":            "server:mariadb-10.3.39",
		"11.4.2-MariaDB-log":               "server:mariadb-11.4.2",
		"8.0.36-0ubuntu0.22.04.1":          "server:mysql-8.0.36",
		"8.4.0":                            "server:mysql-8.4.0",
		"?":                                "server:mysql-unknown",
		"15.18 (Debian 15.18-0+deb12u1)=x": "server:mysql-15.18",
	} {
		if got := mysqlVersionTag(in); got != want {
			t.Errorf("mysqlVersionTag(%q) = %q, want %q", in, got, want)
		}
	}
	if got := versionTag("postgres", "16.3 (Ubuntu 16.3-1.pgdg22.04+1)"); got != "server:postgres-16.3" {
		t.Errorf("postgres: %s", got)
	}
}

// A spec printed or logged in any usual way never shows its password.
func TestDBSpecHidesPassword(t *testing.T) {
	s := Spec{Type: MySQL, Host: "db", Port: 3306, User: "shop", Password: "hunter2", Databases: []string{"shop"}}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("dumping", "spec", s)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("dumping", "spec", s)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), logged.String(), (&Error{Type: MySQL, Database: "shop", Err: errors.New("x")}).Error()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("password shown: %s", out)
		}
	}
	if !strings.Contains(s.String(), "password set") || !strings.Contains(logged.String(), "password_set=true") {
		t.Errorf("no sign that a password is set: %s / %s", s, logged.String())
	}
}

// The trailer checks accept each tool's real ending and refuse a dump cut
// anywhere before it.
func TestDBTrailers(t *testing.T) {
	mysqlEnd := "/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed\n"
	mysqlDated := "/*!40111 SET SQL_NOTES=@OLD_SQL_NOTES */;\n\n-- Dump completed on 2026-11-23 17:00:11\n"
	pgEnd := "ALTER TABLE ONLY public.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict Zx81kq\n\n"
	pgOld := "--\n-- PostgreSQL database dump complete\n--\n\n"
	pgAll := "--\n-- PostgreSQL database cluster dump complete\n--\n\n"
	sqliteEnd := "INSERT INTO t VALUES(2);\nCREATE INDEX i ON t(a);\nCOMMIT;\n"
	mysqlOK := func(b []byte) bool { return lastLineHasPrefix(b, "-- Dump completed", nil) }
	pgOK := func(b []byte) bool {
		return lastLineHasPrefix(b, "-- PostgreSQL database dump complete", pgAfterTrailer)
	}
	pgAllOK := func(b []byte) bool {
		return lastLineHasPrefix(b, "-- PostgreSQL database cluster dump complete", pgAfterTrailer)
	}
	sqliteOK := func(b []byte) bool { return lastLineHasPrefix(b, "COMMIT;", nil) }
	for _, tc := range []struct {
		name  string
		check func([]byte) bool
		text  string
		ok    bool
	}{
		{"mysql", mysqlOK, mysqlEnd, true},
		{"mysql dated", mysqlOK, mysqlDated, true},
		{"mysql cut", mysqlOK, mysqlEnd[:len(mysqlEnd)-20], false},
		{"mysql cut in a row", mysqlOK, "INSERT INTO `t` VALUES (1,'-- Dump completed'),(2,", false},
		{"pg", pgOK, pgEnd, true},
		{"pg before 2025", pgOK, pgOld, true},
		{"pg cut", pgOK, pgEnd[:40], false},
		{"pg cut after a comment", pgOK, "--\n-- Data for Name: t; Type: TABLE DATA\n--\n\n", false},
		{"pg cluster", pgAllOK, pgAll, true},
		{"pg cluster is not a database dump", pgOK, pgAll, false},
		{"sqlite", sqliteOK, sqliteEnd, true},
		{"sqlite rollback", sqliteOK, "INSERT INTO t VALUES(2);\nROLLBACK; -- due to errors\n", false},
		{"sqlite cut", sqliteOK, sqliteEnd[:30], false},
		{"empty", mysqlOK, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Through the reader, in small reads, after a long body.
			body := strings.Repeat("INSERT INTO t VALUES (1);\n", 2000) + tc.text
			cr := &checkedReader{rd: &slowReader{s: body}, complete: tc.check}
			data, err := io.ReadAll(cr)
			if string(data) != body {
				t.Fatalf("read %d bytes of %d", len(data), len(body))
			}
			if tc.ok != (err == nil) {
				t.Fatalf("ok=%v, err=%v", tc.ok, err)
			}
			if err != nil && !errors.Is(err, ErrTruncated) {
				t.Errorf("error %v is not ErrTruncated", err)
			}
		})
	}
}

type slowReader struct{ s string }

func (r *slowReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 777)], r.s)
	r.s = r.s[n:]
	return n, nil
}

func TestDBOptionFileEscape(t *testing.T) {
	if got := mysqlOptionEscape("a\\b\"c#d'e\nf"); got != `a\\b\"c#d'e\nf` {
		t.Errorf("got %s", got)
	}
	if got := pgpassEscape(`a:b\c`); got != `a\:b\\c` {
		t.Errorf("got %s", got)
	}
}

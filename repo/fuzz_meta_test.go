package repo

// Fuzz targets for the small JSON files of the repository: the config (read
// on every open) and lock files (read from other hosts on every lock). Both
// come from the store, so both are untrusted; FuzzDecodeUnpacked covers the
// layer below them (decryption and decompression).

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/chunk"
	"github.com/escrow-backup/escrow/remote/local"
)

// frozenConfig is the configuration restic 0.14 wrote for the frozen
// repository in testdata, as it decodes.
func frozenConfig(f *testing.F) Config {
	f.Helper()
	be, err := local.Open(filepath.Join("testdata", "restic-repo"))
	if err != nil {
		f.Fatal(err)
	}
	pw, err := os.ReadFile(filepath.Join("testdata", "restic-repo.password"))
	if err != nil {
		f.Fatal(err)
	}
	r, err := Open(context.Background(), be, strings.TrimRight(string(pw), "\r\n"), Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer r.Close()
	return r.Config()
}

func FuzzConfig(f *testing.F) {
	pol, err := chunk.RandomPolynomial()
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range []Config{frozenConfig(f), {Version: 2, ID: "5c8b1f0e", ChunkerPolynomial: pol}} {
		buf, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	f.Add([]byte(`{"version":2,"id":"x","chunker_polynomial":"0"}`))
	f.Add([]byte(`{"version":1,"chunker_polynomial":"ffffffffffffffff"}`))
	f.Add([]byte(`{"version":3}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Config
		if json.Unmarshal(data, &c) != nil {
			return
		}
		if c.check() != nil {
			return
		}
		if c.Version != 1 && c.Version != 2 {
			t.Fatalf("accepted version %d", c.Version)
		}
		if c.ChunkerPolynomial == 0 || c.ChunkerPolynomial.Deg() > 63 {
			t.Fatalf("accepted polynomial %v", c.ChunkerPolynomial)
		}
		// What is accepted can be written back (escrow init writes the
		// same struct) and reads the same.
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("an accepted config does not encode: %v", err)
		}
		var again Config
		if err := json.Unmarshal(out, &again); err != nil || again != c {
			t.Fatalf("config changes on a round trip (%v): %+v, %+v", err, c, again)
		}
	})
}

func FuzzLock(f *testing.F) {
	id := ID{7, 7}
	l := lockTemplate()
	l.Time = time.Date(2026, 11, 3, 4, 5, 6, 7, time.UTC)
	for _, l := range []Lock{l, {Time: l.Time, Exclusive: true, Hostname: "web1", Username: "root", PID: 4242, Supersedes: &id}} {
		buf, err := json.Marshal(l)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	// As restic 0.14 writes it.
	f.Add([]byte(`{"time":"2023-04-05T07:00:00.123456789+02:00","exclusive":false,"hostname":"fixture","username":"root","pid":1234,"uid":0,"gid":0}`))
	f.Add([]byte(`{"time":"0001-01-01T00:00:00Z","pid":-1,"escrow_supersedes":"00"}`))
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		var l Lock
		if json.Unmarshal(data, &l) != nil {
			return
		}
		// What lock scans do with another holder's file. The host name
		// is one the fuzzer does not produce, so no process of this
		// machine is probed.
		l.Stale(now, "fuzz.invalid\x00")
		locks := []Lock{l}
		_ = describeLocks(filterLocks(locks, l.Exclusive))
		if err := lockedError(locks, "wait"); err == nil {
			t.Fatal("lockedError returned nil")
		}
		out, err := json.Marshal(l)
		if err != nil {
			return // a time outside what JSON writes: never written by escrow
		}
		var again Lock
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("re-encoded lock does not decode: %v\n%s", err, out)
		}
		if !again.Time.Equal(l.Time) || !reflect.DeepEqual(again.Supersedes, l.Supersedes) || again.PID != l.PID {
			t.Fatalf("lock changes on a round trip:\n%+v\n%+v", l, again)
		}
	})
}

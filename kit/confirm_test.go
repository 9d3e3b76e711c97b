package kit

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConfirm(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if _, ok, err := Confirmed(dir, testID); ok || err != nil {
		t.Fatalf("confirmed before confirming: %v %v", ok, err)
	}
	when := time.Date(2026, 3, 14, 10, 0, 0, 0, time.UTC)
	if err := Confirm(dir, Confirmation{Time: when, RepositoryID: testID, Repository: "/srv/repo"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id string
		ok bool
	}{{testID, true}, {"", true}, {strings.Repeat("0", 64), false}} {
		got, ok, err := Confirmed(dir, tc.id)
		if err != nil || ok != tc.ok || ok && !got.Equal(when) {
			t.Errorf("Confirmed(%q) = %v, %v, %v", tc.id, got, ok, err)
		}
	}
	for name, want := range map[string]fs.FileMode{dir: 0o700, filepath.Join(dir, ConfirmFile): 0o600} {
		if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want mode %v", name, err, want)
		}
	}
	if err := Confirm(dir, Confirmation{RepositoryID: "nope"}); err == nil {
		t.Error("confirmed a bad repository ID")
	}
	if err := os.WriteFile(filepath.Join(dir, ConfirmFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := Confirmed(dir, testID); ok || err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged confirmation: %v %v", ok, err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Count(s.b.String(), sub)
}

func TestRemind(t *testing.T) {
	dir := t.TempDir()
	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Remind(ctx, log, dir, testID, 10*time.Millisecond)
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; log:\n%s", what, out.b.String())
			}
		}
	}
	waitFor("repeated warnings", func() bool { return out.count("recovery kit not confirmed") >= 3 })
	if err := Confirm(dir, Confirmation{Time: time.Now(), RepositoryID: testID}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond) // a tick may have been checking meanwhile
	n := out.count("recovery kit not confirmed")
	time.Sleep(50 * time.Millisecond)
	if m := out.count("recovery kit not confirmed"); m != n {
		t.Fatalf("still warning after the confirmation: %d warnings, then %d", n, m)
	}
	cancel()
	<-done
}

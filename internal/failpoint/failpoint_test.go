package failpoint

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec string
		step Step
		n    int64
		err  string
	}{
		{spec: "pack-uploaded", step: PackUploaded, n: 1},
		{spec: "chunk-read:7", step: ChunkRead, n: 7},
		{spec: " dump-mid:2 ", step: DumpMid, n: 2},
		{spec: "pack-upload", err: "unknown step"},
		{spec: "PACK-UPLOADED", err: "unknown step"},
		{spec: "state-write:0", err: "at least 1"},
		{spec: "state-write:x", err: "at least 1"},
		{spec: "state-write:", err: "at least 1"},
	} {
		step, n, err := Parse(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, want an error with %q", tc.spec, err, tc.err)
			}
			if err != nil && tc.err == "unknown step" && !strings.Contains(err.Error(), stepList()) {
				t.Errorf("Parse(%q): %v does not name the valid steps", tc.spec, err)
			}
			continue
		}
		if err != nil || step != tc.step || n != tc.n {
			t.Errorf("Parse(%q) = %q, %d, %v; want %q, %d", tc.spec, step, n, err, tc.step, tc.n)
		}
	}
}

// TestDisarmed checks that hits of a disarmed or other step do nothing (a
// kill would end this test binary) and that Armed tells them apart. The
// kill itself is exercised through the escrow binary in cmd/escrow.
func TestDisarmed(t *testing.T) {
	t.Cleanup(func() { _ = Arm("") })
	for _, s := range Steps() {
		Hit(s)
	}
	if err := Arm("index-uploaded:3"); err != nil {
		t.Fatal(err)
	}
	if !Armed(IndexUploaded) || Armed(PackUploaded) {
		t.Fatal("Armed does not match the armed step")
	}
	Hit(IndexUploaded)
	Hit(IndexUploaded) // 2 of 3
	Hit(PackUploaded)
	if got := armed.Load().hits.Load(); got != 2 {
		t.Errorf("hits = %d, want 2", got)
	}
	if err := Arm(""); err != nil || Armed(IndexUploaded) {
		t.Fatalf("Arm(\"\") left the failpoint armed: %v", err)
	}
}

func BenchmarkHitDisarmed(b *testing.B) {
	for b.Loop() {
		Hit(PackUploaded)
	}
}

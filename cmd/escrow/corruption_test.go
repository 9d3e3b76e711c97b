//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// The corruption suite (docs/reliability.md, "Corruption"): stored objects
// are damaged through the root credential, the way a failing disk, a buggy
// store or someone with the bucket owner's keys could, and escrow check
// --read-data must find every case and name what it cannot restore.

// checkSummary is the JSON summary of escrow check.
type checkSummary struct {
	MessageType string `json:"message_type"`
	OK          bool   `json:"ok"`
	Problems    []struct {
		Kind     string `json:"kind"`
		Pack     string `json:"pack"`
		Error    string `json:"error"`
		Affected []struct {
			Snapshot string `json:"snapshot"`
			Path     string `json:"path"`
		} `json:"affected"`
		MoreAffected int `json:"more_affected"`
	} `json:"problems"`
}

func (c *cli) checkJSON(args ...string) (checkSummary, result) {
	c.t.Helper()
	r := c.run(nil, append([]string{"--json", "check"}, args...)...)
	var s checkSummary
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, `"message_type":"summary"`) {
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				c.t.Fatalf("check summary %q: %v", line, err)
			}
			return s, r
		}
	}
	c.t.Fatalf("check printed no summary: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	return s, r
}

// blobPlace is where the index puts a blob in its pack.
type blobPlace struct {
	ID, Type       string
	Offset, Length int64
}

// packLayout reads the index with restic (an independent reader of the
// format): each pack's blobs.
func packLayout(t *testing.T, c *cli) map[string][]blobPlace {
	t.Helper()
	r := newResticFor(t, c)
	out, err := r.run("correct horse battery staple", "--no-lock", "list", "index")
	if err != nil {
		t.Fatalf("restic list index: %v\n%s", err, out)
	}
	layout := map[string][]blobPlace{}
	for _, id := range strings.Fields(out) {
		doc, err := r.run("correct horse battery staple", "--no-lock", "cat", "index", id)
		if err != nil {
			t.Fatalf("restic cat index %s: %v\n%s", id, err, doc)
		}
		var idx struct {
			Packs []struct {
				ID    string `json:"id"`
				Blobs []struct {
					ID     string `json:"id"`
					Type   string `json:"type"`
					Offset int64  `json:"offset"`
					Length int64  `json:"length"`
				} `json:"blobs"`
			} `json:"packs"`
		}
		if err := json.Unmarshal([]byte(doc), &idx); err != nil {
			t.Fatalf("index %s from restic: %v", id, err)
		}
		for _, p := range idx.Packs {
			for _, b := range p.Blobs {
				layout[p.ID] = append(layout[p.ID], blobPlace{b.ID, b.Type, b.Offset, b.Length})
			}
		}
	}
	return layout
}

// damage is one corruption of one stored object.
type damage struct {
	kind   string // flip, truncate, extend, remove
	target string // pack, tree, index, snapshot
	key    string // object key in the bucket
	id     string // the object's name (its ID)
	at     int64  // flip: byte; truncate: new length
	// hitsBlob: the damage reaches bytes of an indexed blob, so some file
	// or folder must be reported as affected.
	hitsBlob bool
}

func (d damage) String() string {
	s := fmt.Sprintf("%s of %s %s", d.kind, d.target, d.id[:8])
	if d.kind == "flip" || d.kind == "truncate" {
		s += fmt.Sprintf(" at %d", d.at)
	}
	return s
}

// TestCorruptionDetected damages stored objects one at a time — single
// bit flips, truncations, extensions and removals of packs, of tree blobs
// inside packs, of index and snapshot files — and runs check --read-data
// after each. Every damage must be detected (non-zero exit), a damaged pack
// must be named, damage to a blob must be reported with the files and
// snapshots affected, a damaged snapshot with itself, and a restore must
// bring back every file not reported as affected byte for byte, and no file
// with wrong content. The object is then put back; checks of the clean
// repository in between must find nothing.
func TestCorruptionDetected(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	rounds, cleanChecks := 24, 5
	if testenv.Long() {
		rounds, cleanChecks = 300, 20
	}
	srv := testenv.MinIO(t)
	bucket := srv.NewBucket(t)
	mc := srv.Client(t)
	c := newCLI(t, srv.URL(bucket, "site"), srv.Env()...)
	c.ok("init")
	src := filepath.Join(t.TempDir(), "site")
	makeSite(t, src, 31, 1)

	// Three snapshots, each adding files, so that damage can hit one
	// snapshot's data or several.
	var states []map[string]string
	for i := range 3 {
		if i > 0 {
			writeRandom(t, filepath.Join(src, fmt.Sprintf("wp-content/uploads/add-%d.bin", i)), 2<<20, int64(40+i))
			writeRandom(t, filepath.Join(src, fmt.Sprintf("wp-content/plugins/p%d/extra.php", i)), 3000, int64(50+i))
		}
		c.ok("--pack-size", "1", "backup", src)
		states = append(states, digest(t, src))
	}
	snaps := c.snapshots()
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].Time.Before(snaps[j].Time) })
	if len(snaps) != 3 {
		t.Fatalf("%d snapshots, want 3", len(snaps))
	}
	layout := packLayout(t, c)
	objects := map[string][]string{} // target -> keys
	ctx := context.Background()
	for _, dir := range []string{"data", "index", "snapshots"} {
		for o := range mc.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "site/" + dir + "/", Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			target := map[string]string{"data": "pack", "index": "index", "snapshots": "snapshot"}[dir]
			objects[target] = append(objects[target], o.Key)
			if dir == "data" && hasTree(layout[path.Base(o.Key)]) {
				objects["tree"] = append(objects["tree"], o.Key)
			}
		}
	}
	t.Logf("%d packs (%d with trees), %d index files, %d snapshots",
		len(objects["pack"]), len(objects["tree"]), len(objects["index"]), len(objects["snapshot"]))

	seed := time.Now().UnixNano()
	if v := os.Getenv("ESCROW_CORRUPTION_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
			t.Fatalf("ESCROW_CORRUPTION_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (ESCROW_CORRUPTION_SEED=%d repeats the same damage)", seed, seed)
	rnd := rand.New(rand.NewSource(seed))

	// Every kind against every target, round-robin, with random objects
	// and places. Removing a snapshot file leaves a smaller repository
	// that is as valid as one after forget: no reader can tell, so it is
	// not in the list (Object Lock keeps the removed version; see
	// docs/as-of.md).
	var combos [][2]string
	for _, target := range []string{"pack", "tree", "index", "snapshot"} {
		for _, kind := range []string{"flip", "truncate", "extend", "remove"} {
			if target == "snapshot" && kind == "remove" {
				continue
			}
			combos = append(combos, [2]string{kind, target})
		}
	}

	clean := 0
	cleanCheck := func() {
		t.Helper()
		s, r := c.checkJSON("--read-data")
		if r.code != 0 || !s.OK || len(s.Problems) != 0 {
			t.Fatalf("false alarm: check --read-data of a clean repository: exit %d, %d problems\n%s\n%s", r.code, len(s.Problems), r.stdout, r.stderr)
		}
		clean++
	}
	cleanCheck()

	detected, named, withAffected, restoredFiles := 0, 0, 0, 0
	for round := range rounds {
		kind, target := combos[round%len(combos)][0], combos[round%len(combos)][1]
		keys := objects[target]
		key := keys[rnd.Intn(len(keys))]
		orig := getObject(t, mc, bucket, key)
		d := damage{kind: kind, target: target, key: key, id: path.Base(key)}
		var bad []byte
		blobs := layout[d.id]
		switch kind {
		case "flip":
			d.at = rnd.Int63n(int64(len(orig)))
			if target == "tree" {
				b := treeBlobs(blobs)[rnd.Intn(len(treeBlobs(blobs)))]
				d.at = b.Offset + rnd.Int63n(b.Length)
			}
			bad = bytes.Clone(orig)
			bad[d.at] ^= 1 << rnd.Intn(8)
			d.hitsBlob = inBlob(blobs, d.at, d.at+1)
		case "truncate":
			d.at = rnd.Int63n(int64(len(orig)))
			if target == "tree" {
				b := treeBlobs(blobs)[rnd.Intn(len(treeBlobs(blobs)))]
				d.at = b.Offset + rnd.Int63n(b.Length)
			}
			bad = orig[:d.at]
			d.hitsBlob = inBlob(blobs, d.at, 1<<62)
		case "extend":
			extra := make([]byte, 1+rnd.Intn(100))
			rnd.Read(extra)
			bad = append(bytes.Clone(orig), extra...)
		case "remove":
			d.hitsBlob = len(blobs) > 0
		}
		if kind == "remove" {
			if err := mc.RemoveObject(ctx, bucket, key, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		} else {
			putObject(t, mc, bucket, key, bad)
		}

		s, r := c.checkJSON("--read-data")
		if r.code == 0 || s.OK || len(s.Problems) == 0 {
			t.Errorf("round %d: %s went undetected: exit %d\n%s", round, d, r.code, r.stdout)
		} else {
			detected++
		}
		affected := map[string][]string{} // snapshot ID -> paths
		// A problem lists at most check.MaxAffected paths, oldest snapshot
		// first, and counts the rest: the last snapshot it lists may be
		// listed in part.
		partly := map[string]bool{}
		var isNamed bool
		for _, p := range s.Problems {
			if p.Pack == d.id || strings.Contains(p.Error, d.id[:8]) {
				isNamed = true
			}
			for _, a := range p.Affected {
				affected[a.Snapshot] = append(affected[a.Snapshot], a.Path)
			}
			if p.MoreAffected > 0 && len(p.Affected) > 0 {
				partly[p.Affected[len(p.Affected)-1].Snapshot] = true
			}
		}
		if target == "pack" || target == "tree" || target == "snapshot" || (target == "index" && kind != "remove") {
			if !isNamed {
				t.Errorf("round %d: %s: no problem names %s:\n%s", round, d, d.id[:8], r.stdout)
			} else {
				named++
			}
		}
		switch {
		case target == "snapshot":
			if !contains(affected[d.id], "/") {
				t.Errorf("round %d: %s: the snapshot is not reported as affected:\n%s", round, d, r.stdout)
			}
		case d.hitsBlob || (target == "index" && kind == "remove"):
			if len(affected) == 0 {
				t.Errorf("round %d: %s hit stored data but no file or snapshot is reported affected:\n%s", round, d, r.stdout)
			}
		}
		if len(affected) > 0 {
			withAffected++
		}

		// Restore the oldest snapshot that is not lost as a whole and whose
		// affected files are all listed: every file not reported comes
		// back exact, and none comes back wrong.
		k := 0
		for k < len(snaps)-1 && (contains(affected[snaps[k].ID], "/") || partly[snaps[k].ID]) {
			k++
		}
		if partly[snaps[k].ID] {
			t.Logf("round %d: %s: every snapshot's list of affected files is cut short; restoring %s for wrong content only", round, d, snaps[k].ShortID)
		}
		restoredFiles += restoreUnaffected(t, c, round, d, snaps[k].ID, src, states[k], affected[snaps[k].ID], !partly[snaps[k].ID])

		putObject(t, mc, bucket, key, orig)
		if clean < cleanChecks && (round+1)%max(1, rounds/(cleanChecks-1)) == 0 {
			cleanCheck()
		}
		if t.Failed() {
			t.Logf("round %d: %s: check said:\n%s", round, d, r.stdout)
			break
		}
	}
	for clean < cleanChecks {
		cleanCheck()
	}
	t.Logf("%d of %d corruptions detected, %d named the damaged object, %d reported affected files or snapshots; %d unaffected files restored exactly; %d clean checks without a false alarm",
		detected, rounds, named, withAffected, restoredFiles, clean)
	if out, err := newResticFor(t, c).run("correct horse battery staple", "--no-lock", "check", "--read-data"); err != nil || !strings.Contains(out, "no errors were found") {
		t.Fatalf("restic check --read-data after the objects were put back: %v\n%s", err, out)
	}
}

// restoreUnaffected restores snapshot id and compares it with want (the
// source's digest when it was taken): every file that no affected path
// covers must be identical, and an affected one must be missing or
// identical, never wrong. When the list of affected paths is not complete,
// unlisted files too may be missing, never wrong. It returns the number of
// files compared.
func restoreUnaffected(t *testing.T, c *cli, round int, d damage, id, src string, want map[string]string, affected []string, complete bool) int {
	t.Helper()
	target := t.TempDir()
	r := c.run(nil, "restore", id, "--target", target)
	got := digest(t, target)
	n := 0
	var wrong []string
	for rel, w := range want {
		abs := filepath.Join(src, rel)
		hit := false
		for _, a := range affected {
			if a == "/" || abs == a || strings.HasPrefix(abs, strings.TrimSuffix(a, "/")+"/") {
				hit = true
			}
		}
		restored, ok := got[strings.TrimPrefix(abs, "/")]
		switch {
		case !hit && restored != w && (complete || ok):
			wrong = append(wrong, fmt.Sprintf("%s is not reported affected but restored as %q, want %q", rel, restored, w))
		case hit && ok && strings.HasPrefix(w, "-") && restored != w:
			wrong = append(wrong, fmt.Sprintf("the affected file %s was restored with wrong content", rel))
		case !hit && restored == w:
			n++
		}
	}
	if len(wrong) > 0 {
		sort.Strings(wrong)
		t.Errorf("round %d: %s: restore of snapshot %s (exit %d): %d files wrong: %s\nrestore said:\n%s",
			round, d, id[:8], r.code, len(wrong), strings.Join(wrong[:min(5, len(wrong))], "; "), r.stderr)
	}
	return n
}

func hasTree(blobs []blobPlace) bool { return len(treeBlobs(blobs)) > 0 }

func treeBlobs(blobs []blobPlace) []blobPlace {
	var out []blobPlace
	for _, b := range blobs {
		if b.Type == "tree" {
			out = append(out, b)
		}
	}
	return out
}

// inBlob reports whether bytes [from, to) overlap an indexed blob.
func inBlob(blobs []blobPlace, from, to int64) bool {
	for _, b := range blobs {
		if from < b.Offset+b.Length && to > b.Offset {
			return true
		}
	}
	return false
}

func getObject(t *testing.T, mc *minio.Client, bucket, key string) []byte {
	t.Helper()
	obj, err := mc.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return data
}

func putObject(t *testing.T, mc *minio.Client, bucket, key string, data []byte) {
	t.Helper()
	if _, err := mc.PutObject(context.Background(), bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{DisableMultipart: true}); err != nil {
		t.Fatalf("write %s: %v", key, err)
	}
}

//go:build unix

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/restore"
)

// progressTreeFiles and progressTreeMB describe the tree the progress tests
// back up: one large file, so a backup or restore lasts long enough for the
// display to be drawn several times, and small ones to count.
const (
	progressTreeFiles = 40
	progressTreeMB    = 160
)

func makeProgressTree(t *testing.T) (root string, bytes uint64) {
	t.Helper()
	root = t.TempDir()
	rnd := rand.New(rand.NewSource(7))
	write := func(rel string, size int) {
		data := make([]byte, size)
		rnd.Read(data)
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		bytes += uint64(size)
	}
	write("uploads/big.bin", progressTreeMB<<20)
	for i := 1; i < progressTreeFiles; i++ {
		write(fmt.Sprintf("pages/p%02d.html", i), 1000+100*i)
	}
	return root, bytes
}

// A plain line is written every ESCROW_PROGRESS_INTERVAL when stderr is not
// a terminal, by backup, restore and check --read-data.
func TestProgressLinesWhenPiped(t *testing.T) {
	root, _ := makeProgressTree(t)
	c := newCLI(t, t.TempDir(), progressIntervalEnv+"=50ms")
	c.ok("init")

	r := c.run(nil, "backup", root)
	if r.code != 0 {
		t.Fatalf("backup: exit %d: %s", r.code, r.stderr)
	}
	// A line names what is done, then the share, the bytes and files of
	// their totals, the rate and the time, and nothing that redraws.
	backupLine := regexp.MustCompile(`(?m)^backup: \d+\.\d% done, [\d.]+ (B|[KMG]iB) of 160\.\d MiB, \d+ of 40 files, [\d.]+ (B|[KMG]iB)/s, elapsed \d+s(, ETA \d+[hms\d]*)?$`)
	if !backupLine.MatchString(r.stderr) {
		t.Errorf("no progress line in backup's stderr:\n%s", r.stderr)
	}
	if strings.ContainsAny(r.stderr, "\r\x1b") {
		t.Errorf("progress lines for a pipe hold control characters: %q", r.stderr)
	}
	if !strings.Contains(r.stdout, "snapshot ") {
		t.Errorf("no summary after the progress lines: %s", r.stdout)
	}

	r = c.run(nil, "restore", "latest", "--target", t.TempDir())
	restoreLine := regexp.MustCompile(`(?m)^restore: \d+\.\d% done, [\d.]+ (B|[KMG]iB) of 160\.\d MiB, \d+ of 40 files, [\d.]+ (B|[KMG]iB)/s, elapsed \d+s(, ETA \d+[hms\d]*)?$`)
	if r.code != 0 || !restoreLine.MatchString(r.stderr) {
		t.Errorf("restore: exit %d, no progress line in stderr:\n%s", r.code, r.stderr)
	}

	r = c.run(nil, "check", "--read-data")
	checkLine := regexp.MustCompile(`(?m)^check read-data: \d+\.\d% done, [\d.]+ (B|[KMG]iB) of [\d.]+ MiB, \d+ of \d+ packs, [\d.]+ (B|[KMG]iB)/s, elapsed \d+s(, ETA \d+[hms\d]*)?$`)
	if r.code != 0 || !checkLine.MatchString(r.stderr) {
		t.Errorf("check --read-data: exit %d, no progress line in stderr:\n%s", r.code, r.stderr)
	}

	// --quiet silences progress.
	r = c.run(nil, "--quiet", "backup", "--force", root)
	if r.code != 0 || r.stderr != "" || r.stdout != "" {
		t.Errorf("backup --quiet: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestProgressIntervalInvalid(t *testing.T) {
	c := newCLI(t, t.TempDir(), progressIntervalEnv+"=fast")
	c.ok("init")
	r := c.run(nil, "backup", t.TempDir())
	if r.code != exitUsage || !strings.Contains(r.stderr, progressIntervalEnv+`="fast" is not a positive duration`) || !strings.Contains(r.stderr, "10s") {
		t.Errorf("exit %d, stderr %q: want a usage error naming %s and an example", r.code, r.stderr, progressIntervalEnv)
	}
	if len(c.snapshots()) != 0 {
		t.Error("a snapshot was saved despite the usage error")
	}
}

// jsonLines parses every line of out as one JSON object.
func jsonLines(t *testing.T, what, out string) []map[string]any {
	t.Helper()
	var msgs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: stdout line %q is not a JSON object: %v", what, sc.Text(), err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		t.Fatalf("%s: no JSON on stdout", what)
	}
	return msgs
}

// messageKeys returns the union of the field names of the messages of the
// given type.
func messageKeys(msgs []map[string]any, typ string) map[string]bool {
	keys := map[string]bool{}
	for _, m := range msgs {
		if m["message_type"] == typ {
			for k := range m {
				keys[k] = true
			}
		}
	}
	return keys
}

func missing(want, have map[string]bool, ignore ...string) []string {
	var out []string
	for k := range want {
		if !have[k] && !contains(ignore, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// escrow backup --json writes restic's messages: status lines while it
// runs, then a summary with every field restic's summary has, as the real
// restic writes them for the same tree.
func TestBackupJSONMatchesRestic(t *testing.T) {
	restic := testenv.RequireBinary(t, "restic")
	root, size := makeProgressTree(t)
	// The fields of restic's backup status message (internal/ui/backup/
	// json.go); escrow's status messages use no others.
	resticStatusFields := map[string]bool{"message_type": true, "seconds_elapsed": true, "seconds_remaining": true,
		"percent_done": true, "total_files": true, "files_done": true, "total_bytes": true, "bytes_done": true,
		"error_count": true, "current_files": true}

	rdir := t.TempDir()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("restic test password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runRestic := func(args ...string) string {
		cmd := exec.Command(restic, append([]string{"--no-cache", "-r", rdir, "--password-file", pw}, args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("restic %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	runRestic("init")
	rmsgs := jsonLines(t, "restic backup --json", runRestic("backup", "--json", root))

	c := newCLI(t, t.TempDir(), progressIntervalEnv+"=50ms")
	c.ok("init")
	r := c.run(nil, "--json", "backup", root)
	if r.code != 0 {
		t.Fatalf("escrow backup --json: exit %d: %s", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("escrow backup --json wrote to stderr: %q", r.stderr)
	}
	emsgs := jsonLines(t, "escrow backup --json", r.stdout)

	last := emsgs[len(emsgs)-1]
	if last["message_type"] != "summary" {
		t.Fatalf("the last message is %v, want the summary", last)
	}
	statuses := 0
	for _, m := range emsgs[:len(emsgs)-1] {
		if m["message_type"] != "status" {
			t.Errorf("unexpected message before the summary: %v", m)
			continue
		}
		statuses++
		for k := range m {
			if !resticStatusFields[k] {
				t.Errorf("status field %q is not one of restic's", k)
			}
		}
		if p, ok := m["percent_done"].(float64); !ok || p < 0 || p > 1 {
			t.Errorf("percent_done %v not in [0,1]", m["percent_done"])
		}
	}
	if statuses == 0 {
		t.Error("no status messages before the summary")
	}
	if got := missing(messageKeys(rmsgs, "summary"), messageKeys(emsgs, "summary")); len(got) > 0 {
		t.Errorf("escrow's summary lacks restic's fields %v", got)
	}
	// Fields that restic writes only in some states (the time left once
	// known, the files being read) may be missing from escrow's samples.
	if got := missing(messageKeys(rmsgs, "status"), messageKeys(emsgs, "status"), "current_files", "error_count", "seconds_remaining"); len(got) > 0 {
		t.Errorf("escrow's status messages lack restic's fields %v", got)
	}
	if last["total_files_processed"] != float64(progressTreeFiles) || last["total_bytes_processed"] != float64(size) || last["files_new"] != float64(progressTreeFiles) {
		t.Errorf("summary counts %v, want %d files of %d bytes", last, progressTreeFiles, size)
	}
	if id, _ := last["snapshot_id"].(string); len(id) != 64 || c.snapshots()[0].ID != id {
		t.Errorf("summary snapshot_id %q is not the saved snapshot", id)
	}

	// restore --json: restic's restore status names, then a summary.
	r = c.run(nil, "--json", "restore", "latest", "--target", t.TempDir())
	if r.code != 0 {
		t.Fatalf("restore --json: exit %d: %s", r.code, r.stderr)
	}
	rs := jsonLines(t, "escrow restore --json", r.stdout)
	checkStatusThenSummary(t, "restore", rs, []string{"files_restored", "bytes_restored", "total_files", "total_bytes", "percent_done", "seconds_elapsed"})
	if s := rs[len(rs)-1]; s["files_restored"] != float64(progressTreeFiles) || s["bytes_restored"] != float64(size) {
		t.Errorf("restore summary %v, want %d files of %d bytes", s, progressTreeFiles, size)
	}

	r = c.run(nil, "--json", "check", "--read-data")
	if r.code != 0 {
		t.Fatalf("check --read-data --json: exit %d: %s", r.code, r.stderr)
	}
	cs := jsonLines(t, "escrow check --read-data --json", r.stdout)
	checkStatusThenSummary(t, "check", cs, []string{"packs_done", "bytes_done", "total_packs", "total_bytes", "percent_done", "seconds_elapsed"})
	if s := cs[len(cs)-1]; s["ok"] != true || s["packs_read"] != s["packs"] {
		t.Errorf("check summary %v: want ok and every pack read", s)
	}
}

// checkStatusThenSummary checks that msgs are status messages holding the
// fields want (in at least one of them), then one summary.
func checkStatusThenSummary(t *testing.T, what string, msgs []map[string]any, want []string) {
	t.Helper()
	if msgs[len(msgs)-1]["message_type"] != "summary" {
		t.Errorf("%s: last message %v is not the summary", what, msgs[len(msgs)-1])
	}
	if len(msgs) < 2 {
		t.Errorf("%s: no status message before the summary", what)
		return
	}
	for _, m := range msgs[:len(msgs)-1] {
		if m["message_type"] != "status" {
			t.Errorf("%s: unexpected message %v", what, m)
		}
	}
	keys := messageKeys(msgs, "status")
	for _, k := range want {
		if !keys[k] {
			t.Errorf("%s: no status message has %q (fields: %v)", what, k, keys)
		}
	}
}

// db dump --json writes status messages while the dump streams and its
// results last; restore-db writes plain progress lines to a pipe.
func TestDumpProgressSQLite(t *testing.T) {
	sqlite := testenv.RequireBinary(t, "sqlite3")
	dir := t.TempDir()
	src := filepath.Join(dir, "app.sqlite")
	// About 30 MB of rows, a 60 MB dump: long enough for several updates.
	fill := "CREATE TABLE t (b); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 15000) INSERT INTO t SELECT randomblob(2000) FROM c;"
	if out, err := exec.Command(sqlite, src, fill).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
	c := newCLI(t, t.TempDir(), progressIntervalEnv+"=50ms")
	c.ok("init")

	r := c.run(nil, "--json", "db", "dump", "--type", "sqlite", "--path", src, "--name", "app")
	if r.code != 0 {
		t.Fatalf("db dump --json: exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	statuses := jsonLines(t, "db dump --json", strings.Join(lines[:len(lines)-1], "\n"))
	var grew bool
	for i, m := range statuses {
		if m["message_type"] != "status" {
			t.Errorf("unexpected message %v", m)
		}
		if i > 0 && m["bytes_done"].(float64) > statuses[i-1]["bytes_done"].(float64) {
			grew = true
		}
	}
	if !grew {
		t.Errorf("bytes_done never grew across %d status messages", len(statuses))
	}
	var results []map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &results); err != nil || len(results) != 1 || results[0]["snapshot_id"] == nil {
		t.Fatalf("last line %q is not the dump's results: %v", lines[len(lines)-1], err)
	}

	restored := filepath.Join(dir, "restored.sqlite")
	r = c.run(nil, "restore-db", "latest", "sqlite/app", "--to", "sqlite://"+restored, "--create")
	line := regexp.MustCompile(`(?m)^restore sqlite/app: \d+\.\d% done, [\d.]+ (B|[KMG]iB) of [\d.]+ MiB, 0 of 1 files, [\d.]+ (B|[KMG]iB)/s, elapsed \d+s, ETA \d+[hms\d]*$`)
	if r.code != 0 || !line.MatchString(r.stderr) {
		t.Errorf("restore-db: exit %d, no progress line in stderr:\n%s", r.code, r.stderr)
	}
}

// A restore's totals come from the snapshot's summary until its own walk
// has counted them, so the share done never runs ahead and back.
func TestRestoreTotals(t *testing.T) {
	sum := &repo.Summary{TotalFilesProcessed: 1000, TotalBytesProcessed: 5 << 30}
	for _, tc := range []struct {
		name         string
		p            restore.Progress
		hint         *repo.Summary
		files, bytes uint64
	}{
		{"walking, with a summary", restore.Progress{FilesTotal: 40, BytesTotal: 1 << 20}, sum, 1000, 5 << 30},
		{"walking, no summary", restore.Progress{FilesTotal: 40, BytesTotal: 1 << 20}, nil, 40, 1 << 20},
		{"walk ended: its own count", restore.Progress{FilesTotal: 999, BytesTotal: 5<<30 - 7, Counted: true}, sum, 999, 5<<30 - 7},
		{"walk past a short summary", restore.Progress{FilesTotal: 1200, BytesTotal: 6 << 30}, sum, 1200, 6 << 30},
	} {
		files, bytes := restoreTotals(tc.p, tc.hint)
		if files != tc.files || bytes != tc.bytes {
			t.Errorf("%s: totals %d files, %d bytes; want %d, %d", tc.name, files, bytes, tc.files, tc.bytes)
		}
	}
}

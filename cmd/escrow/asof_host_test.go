//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/doctor"
	"github.com/escrow-backup/escrow/internal/attack"
	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

// lockedEscrow is a repository in an Object Lock bucket, created by the
// owner (root) and backed up by the host with exactly the policy escrow
// doctor --policy prints, as a reseller sets it up.
type lockedEscrow struct {
	srv            testenv.Server
	host, verifier testenv.Server
	bucket, prefix string
	owner, hc, vc  *cli
	src            string
	want           map[string]string // the tree at the last backup before at
	before         []string          // the snapshot IDs at at
	at             string            // a time after the backups, before any attack
	tree           repo.ID           // the latest snapshot's tree, for bogus snapshots
	preAttack      []attack.Version  // every version stored at at
	key            *repo.Key
}

func newLockedEscrow(t *testing.T, mode string) *lockedEscrow {
	t.Helper()
	ctx := context.Background()
	e := &lockedEscrow{srv: testenv.MinIO(t), prefix: "site"}
	// One day: the shortest default retention S3 allows, and enough to
	// cover the test.
	e.bucket = e.srv.NewLockedBucket(t, mode, 1)
	addr := e.srv.URL(e.bucket, e.prefix)
	e.owner = newCLI(t, addr, e.srv.Env()...)
	e.owner.ok("init")
	for _, u := range []struct {
		role doctor.Role
		name string
		into *testenv.Server
	}{{doctor.HostWriter, "host", &e.host}, {doctor.Reader, "verifier", &e.verifier}} {
		pol, err := doctor.Policy(e.bucket, e.prefix, u.role, doctor.MinIO)
		if err != nil {
			t.Fatal(err)
		}
		*u.into = e.srv.NewUser(t, u.name, pol)
	}
	e.hc = newCLI(t, addr, e.host.Env()...)
	e.vc = newCLI(t, addr, e.verifier.Env()...)

	// The long tier attacks a bigger repository with more snapshots.
	bigMB, backups := 1, 2
	if testenv.Long() {
		bigMB, backups = 64, 8
	}
	e.src = filepath.Join(t.TempDir(), "site")
	makeSite(t, e.src, 11, bigMB)
	for i := range backups {
		if i > 0 {
			if err := os.WriteFile(filepath.Join(e.src, "wp-config.php"), fmt.Appendf(nil, "<?php define('DB_NAME','shop%d');\n", i), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		e.hc.ok("backup", e.src)
	}
	e.want = digest(t, e.src)
	snaps := e.hc.snapshots()
	for _, sn := range snaps {
		e.before = append(e.before, sn.ID)
	}
	slices.Sort(e.before)
	tree, err := repo.ParseID(snaps[len(snaps)-1].Tree)
	if err != nil {
		t.Fatal(err)
	}
	e.tree = tree
	// S3 version times have a second's resolution.
	time.Sleep(1100 * time.Millisecond)
	e.at = time.Now().UTC().Format(time.RFC3339Nano)
	time.Sleep(1100 * time.Millisecond)

	e.key = masterKey(t, e.srv, e.bucket, e.prefix)
	e.preAttack, err = e.target(e.srv.Client(t)).Versions(ctx, e.srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *lockedEscrow) target(c *minio.Client) attack.Target {
	return attack.Target{Client: c, Bucket: e.bucket, Prefix: e.prefix, Key: e.key}
}

// attackAll runs every attack with c: the overwrites and bogus snapshots
// (attack.Everything, which also puts delete markers), then deleting every
// version with and without the governance bypass, shortening every
// retention with and without it, and, with lifecycle, an expiry rule.
func (e *lockedEscrow) attackAll(t *testing.T, c *minio.Client, bypass, lifecycle bool) attack.Result {
	t.Helper()
	ctx := context.Background()
	a := e.target(c)
	sum, err := a.Everything(ctx, 2, e.tree, []string{e.src})
	if err != nil {
		t.Fatalf("attack: %v", err)
	}
	modes := []bool{false}
	if bypass {
		modes = append(modes, true)
	}
	for _, b := range modes {
		r, err := a.DeleteVersions(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		sum.Sum(r)
		if r, err = a.ShortenRetention(ctx, b); err != nil {
			t.Fatal(err)
		}
		sum.Sum(r)
	}
	if lifecycle {
		r, err := a.ExpireByLifecycle(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sum.Sum(r)
	}
	// A refusal is the store's answer, not a broken connection.
	codes := map[string]int{}
	for _, err := range sum.Errors {
		var er minio.ErrorResponse
		if !errors.As(err, &er) || er.StatusCode < 400 || er.StatusCode >= 500 {
			t.Fatalf("an attack step failed other than by a refusal: %v", err)
		}
		if codes[er.Code] == 0 {
			t.Logf("refused, e.g.: %v", err)
		}
		codes[er.Code]++
	}
	t.Logf("attack: %d delete markers, %d overwrites, %d bogus snapshots, %d versions deleted, %d retentions shortened, %d lifecycle rules; %d refused %v",
		sum.DeleteMarkers, sum.Overwrites, sum.Uploads, sum.Deletes, sum.Shortened, sum.Lifecycle, len(sum.Errors), codes)
	return sum
}

// survives checks that every version stored before the attack is still
// there, unchanged.
func (e *lockedEscrow) survives(t *testing.T) {
	t.Helper()
	after, err := e.target(e.srv.Client(t)).Versions(context.Background(), e.srv.Client(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range e.preAttack {
		if !slices.Contains(after, v) {
			t.Errorf("version %s of %s (etag %s) is gone after the attack", v.VersionID, v.Key, v.ETag)
		}
	}
	t.Logf("%d versions before the attack, all kept; %d after", len(e.preAttack), len(after))
}

// restoresAsOf restores the latest snapshot as of before the attack with
// c's credentials into a fresh directory and compares it byte for byte.
func (e *lockedEscrow) restoresAsOf(t *testing.T, c *cli, who string) {
	t.Helper()
	if got := snapshotIDs(t, c.ok("snapshots", "--as-of", e.at, "--json")); !slices.Equal(got, e.before) {
		t.Fatalf("snapshots --as-of with the %s's credentials: %v, want %v", who, got, e.before)
	}
	dir := t.TempDir()
	c.ok("restore", "latest", "--as-of", e.at, "--target", dir, "--verify")
	sameTree(t, e.want, digest(t, filepath.Join(dir, e.src)))
}

// TestAsOfAttackHostWriter runs the attack with the host's own credential
// (put, get and list only) on Object Lock buckets in both modes: every
// delete, delete marker, retention change, governance bypass and lifecycle
// rule is refused; what the host can do (new versions: garbage, forged
// content, bogus snapshots) is undone by reading as of before the attack,
// and by the owner's recover. Then the attack with an over-broad
// credential (root, without the bypass header) on the governance bucket:
// the delete markers go through, and still every version stored before
// survives and restores.
func TestAsOfAttackHostWriter(t *testing.T) {
	if testing.Short() {
		t.Skip("attack drill: skipped with -short")
	}
	for _, mode := range []string{s3.Governance, s3.Compliance} {
		t.Run(strings.ToLower(mode), func(t *testing.T) {
			e := newLockedEscrow(t, mode)
			res := e.attackAll(t, e.host.Client(t), true, true)
			if res.DeleteMarkers+res.Deletes+res.Shortened+res.Lifecycle != 0 {
				t.Fatalf("the host's credential destroyed something: %+v", res)
			}
			// Delete markers on every object, two delete and two
			// shortening passes over every version, one lifecycle rule.
			objects := map[string]bool{}
			for _, v := range e.preAttack {
				objects[v.Key] = true
			}
			if min := len(objects) + 4 + 1; len(res.Errors) < min {
				t.Fatalf("%d refusals, want at least %d", len(res.Errors), min)
			}
			if res.Overwrites == 0 || res.Uploads != 2 {
				t.Fatalf("the host could not write new versions, so the test proves nothing: %+v", res)
			}
			e.survives(t)

			e.restoresAsOf(t, e.hc, "host")
			e.restoresAsOf(t, e.vc, "verifier")

			r := e.hc.run(nil, "doctor")
			if r.code != 0 || !strings.HasPrefix(r.stdout, "tamper-proof: versions kept 1 days in "+strings.ToLower(mode)+" mode") {
				t.Fatalf("doctor as the host after the attack: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
			}

			out := e.owner.ok("recover", "--as-of", e.at)
			t.Logf("recover: %s", strings.TrimSpace(out))
			e.owner.ok("unlock")
			rs := newResticFor(t, e.owner)
			const pw = "correct horse battery staple"
			if out, err := rs.run(pw, "check"); err != nil {
				t.Fatalf("restic check after recover: %v\n%s", err, out)
			}
			out, err := rs.run(pw, "snapshots", "--json")
			if err != nil {
				t.Fatalf("restic snapshots: %v\n%s", err, out)
			}
			if got := snapshotIDs(t, out); !slices.Equal(got, e.before) {
				t.Fatalf("restic snapshots after recover: %v, want %v", got, e.before)
			}
		})
	}

	t.Run("over-broad", func(t *testing.T) {
		e := newLockedEscrow(t, s3.Governance)
		res := e.attackAll(t, e.srv.Client(t), false, false)
		if res.DeleteMarkers == 0 || res.Overwrites == 0 || res.Uploads != 2 {
			t.Fatalf("root could not mark objects deleted or overwrite them, so the test proves nothing: %+v", res)
		}
		// Without the bypass header even root cannot remove a version
		// or shorten its retention.
		if res.Deletes+res.Shortened != 0 {
			t.Fatalf("root without the bypass header destroyed something: %+v", res)
		}
		if r := e.vc.run(nil, "restore", "latest", "--target", t.TempDir()); r.code == 0 {
			t.Fatal("the current view restored after every object was marked deleted; the attack did nothing")
		}
		e.survives(t)
		e.restoresAsOf(t, e.vc, "verifier")
		e.restoresAsOf(t, e.hc, "host")
	})
}

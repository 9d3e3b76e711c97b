// Package attack plays, in tests, an attacker on the backing-up host who
// holds the host's S3 credential and the repository password, and tries to
// destroy or falsify the escrow: delete markers on every object, objects
// overwritten with garbage or with validly encrypted but wrong content, and
// bogus snapshots. Tests run it with whatever credential they want to
// prove (the host writer's must fail; an over-broad one succeeds, and the
// owner must still get the past back with --as-of and recover).
package attack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"

	"github.com/escrow-backup/escrow/repo"
)

// Target is the repository under attack.
type Target struct {
	Client *minio.Client // the attacker's credential
	Bucket string
	Prefix string // the repository's prefix in the bucket, "" for none
	// Key is the repository's master key: the attacker on the host has the
	// password, so it can encrypt whatever it likes.
	Key *repo.Key
}

// Content is what an overwrite puts under an existing name.
type Content int

const (
	// Garbage is random bytes.
	Garbage Content = iota
	// Forged is validly encrypted: another snapshot's or index's content
	// under this one's name, a config with another repository ID, and for
	// other objects a sealed empty JSON document.
	Forged
)

// Result counts what the attack managed to do. Errors counts refusals
// (with a credential that lacks the rights, every attempt is one).
type Result struct {
	DeleteMarkers, Overwrites, Uploads int
	// Deletes counts versions removed for good, Shortened retentions
	// moved earlier, Lifecycle expiry rules set: with Object Lock in
	// force all three stay 0 for every credential but root's bypass.
	Deletes, Shortened, Lifecycle int
	Errors                        []error
}

func (r *Result) add(err error, n *int) {
	if err != nil {
		r.Errors = append(r.Errors, err)
		return
	}
	*n++
}

func (a Target) key(rel string) string {
	if a.Prefix == "" {
		return rel
	}
	return a.Prefix + "/" + rel
}

// objects lists the keys under the repository's folder dir ("" for all),
// relative to the prefix: the current ones, or with hidden also those a
// delete marker hides.
func (a Target) objects(ctx context.Context, dir string, hidden bool) ([]string, error) {
	prefix := a.key(dir)
	if dir == "" && a.Prefix != "" {
		prefix = a.Prefix + "/"
	}
	var out []string
	seen := map[string]bool{}
	for obj := range a.Client.ListObjects(ctx, a.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: hidden}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, obj.Err)
		}
		if seen[obj.Key] {
			continue
		}
		seen[obj.Key] = true
		rel := obj.Key
		if a.Prefix != "" {
			rel = strings.TrimPrefix(rel, a.Prefix+"/")
		}
		out = append(out, rel)
	}
	return out, nil
}

func (a Target) put(ctx context.Context, rel string, data []byte) error {
	_, err := a.Client.PutObject(ctx, a.Bucket, a.key(rel), bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{SendContentMd5: true, DisableMultipart: true})
	if err != nil {
		return fmt.Errorf("put %s: %w", rel, err)
	}
	return nil
}

// plaintext decrypts the newest version of rel that the key opens (an
// earlier attack may have put garbage on top).
func (a Target) plaintext(ctx context.Context, rel string) ([]byte, error) {
	for obj := range a.Client.ListObjects(ctx, a.Bucket, minio.ListObjectsOptions{Prefix: a.key(rel), WithVersions: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list versions of %s: %w", rel, obj.Err)
		}
		if obj.Key != a.key(rel) || obj.IsDeleteMarker {
			continue
		}
		o, err := a.Client.GetObject(ctx, a.Bucket, obj.Key, minio.GetObjectOptions{VersionID: obj.VersionID})
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", rel, err)
		}
		data, err := io.ReadAll(o)
		o.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", rel, err)
		}
		if plain, err := a.Key.Open(nil, data); err == nil {
			return plain, nil
		}
	}
	return nil, fmt.Errorf("no version of %s opens with the key", rel)
}

// DeleteAll puts a delete marker on every current object of the repository.
func (a Target) DeleteAll(ctx context.Context) (Result, error) {
	var res Result
	keys, err := a.objects(ctx, "", false)
	if err != nil {
		return res, err
	}
	for _, k := range keys {
		err := a.Client.RemoveObject(ctx, a.Bucket, a.key(k), minio.RemoveObjectOptions{})
		res.add(err, &res.DeleteMarkers)
	}
	return res, nil
}

// Overwrite puts new content under the config and every key, index and
// snapshot file, and, with packs, every pack file, including those a
// delete marker hides (the overwrite then makes them visible again, with
// the attacker's content).
func (a Target) Overwrite(ctx context.Context, c Content, packs bool) (Result, error) {
	var res Result
	folders := []string{"keys/", "index/", "snapshots/"}
	if packs {
		folders = append(folders, "data/")
	}
	var names []string
	for _, f := range folders {
		ks, err := a.objects(ctx, f, true)
		if err != nil {
			return res, err
		}
		names = append(names, ks...)
	}
	// Another object of the same folder to forge from, read before any
	// overwrite.
	donor := map[string][]byte{}
	if c == Forged {
		for _, n := range names {
			dir := n[:strings.Index(n, "/")]
			if _, ok := donor[dir]; ok || (dir != "snapshots" && dir != "index") {
				continue
			}
			plain, err := a.plaintext(ctx, n)
			if err != nil {
				return res, err
			}
			donor[dir] = plain
		}
	}
	names = append(names, "config")
	for i, n := range names {
		data, err := a.content(c, n, i, donor)
		if err != nil {
			return res, err
		}
		res.add(a.put(ctx, n, data), &res.Overwrites)
	}
	return res, nil
}

func (a Target) content(c Content, name string, i int, donor map[string][]byte) ([]byte, error) {
	if c == Garbage {
		data := make([]byte, 64+i%200)
		_, _ = rand.Read(data)
		return data, nil
	}
	dir, _, _ := strings.Cut(name, "/")
	var plain []byte
	switch {
	case name == "config":
		var id [32]byte
		_, _ = rand.Read(id[:])
		plain, _ = json.Marshal(repo.Config{Version: 2, ID: fmt.Sprintf("%x", id), ChunkerPolynomial: 0x3DA3358B4DC173})
	case donor[dir] != nil:
		plain = donor[dir]
	default:
		plain = []byte("{}")
	}
	return a.Key.Seal(nil, plain), nil
}

// BogusSnapshots uploads n validly encrypted snapshots, correctly named by
// their hash, that claim to be newer backups of tree (the tree of an
// existing snapshot: an older state passed off as the latest).
func (a Target) BogusSnapshots(ctx context.Context, n int, tree repo.ID, paths []string) (Result, error) {
	var res Result
	for i := range n {
		sn := map[string]any{
			"time": time.Now().Add(time.Duration(i+1) * time.Hour), "tree": tree,
			"paths": paths, "hostname": "attacker", "username": "root",
		}
		plain, err := json.Marshal(sn)
		if err != nil {
			return res, err
		}
		sealed := a.Key.Seal(nil, plain)
		res.add(a.put(ctx, "snapshots/"+repo.Hash(sealed).String(), sealed), &res.Uploads)
	}
	return res, nil
}

// Everything runs every attack in turn, as a host attacker would: garbage
// over every file (packs included), delete markers on everything, forged
// content over the config, keys, index and snapshots, and n bogus
// snapshots of tree. It returns the sum; with a credential that may only
// put, get and list, every delete marker must be among the errors.
func (a Target) Everything(ctx context.Context, n int, tree repo.ID, paths []string) (Result, error) {
	var sum Result
	steps := []func() (Result, error){
		func() (Result, error) { return a.Overwrite(ctx, Garbage, true) },
		func() (Result, error) { return a.DeleteAll(ctx) },
		func() (Result, error) { return a.Overwrite(ctx, Forged, false) },
		func() (Result, error) { return a.BogusSnapshots(ctx, n, tree, paths) },
	}
	for _, step := range steps {
		r, err := step()
		sum.Sum(r)
		if err != nil {
			return sum, err
		}
	}
	return sum, nil
}

// Version is one stored version of an object, as listed with the root
// credential: what must survive every attack within the retention.
type Version struct {
	Key, VersionID, ETag string
}

// Versions lists every stored version (delete markers left out) below the
// prefix with c, whatever credential the attack uses.
func (a Target) Versions(ctx context.Context, c *minio.Client) ([]Version, error) {
	prefix := ""
	if a.Prefix != "" {
		prefix = a.Prefix + "/"
	}
	var out []Version
	for obj := range c.ListObjects(ctx, a.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list versions below %q: %w", prefix, obj.Err)
		}
		if !obj.IsDeleteMarker {
			out = append(out, Version{Key: obj.Key, VersionID: obj.VersionID, ETag: obj.ETag})
		}
	}
	return out, nil
}

// DeleteVersions tries to delete every stored version for good, with
// bypass also sending the governance bypass header. Object Lock refuses it
// within the retention whatever the credential, except root's bypass in
// governance mode; Refused counts in Errors.
func (a Target) DeleteVersions(ctx context.Context, bypass bool) (Result, error) {
	var res Result
	vs, err := a.Versions(ctx, a.Client)
	if err != nil {
		// A credential without the right to list versions is refused
		// here already: one refusal, nothing deleted.
		res.Errors = append(res.Errors, err)
		return res, nil
	}
	for _, v := range vs {
		err := a.Client.RemoveObject(ctx, a.Bucket, v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID, GovernanceBypass: bypass})
		if err != nil {
			err = fmt.Errorf("delete version %s of %s: %w", v.VersionID, v.Key, err)
		}
		res.add(err, &res.Deletes)
	}
	return res, nil
}

// ShortenRetention tries to move every version's retain-until date to a
// second from now in governance mode (which shortens a compliance
// retention too, and would let a later bypass delete it), with bypass
// also sending the governance bypass header.
func (a Target) ShortenRetention(ctx context.Context, bypass bool) (Result, error) {
	var res Result
	vs, err := a.Versions(ctx, a.Client)
	if err != nil {
		res.Errors = append(res.Errors, err)
		return res, nil
	}
	mode := minio.Governance
	for _, v := range vs {
		until := time.Now().Add(time.Second)
		err := a.Client.PutObjectRetention(ctx, a.Bucket, v.Key, minio.PutObjectRetentionOptions{
			VersionID: v.VersionID, Mode: &mode, RetainUntilDate: &until, GovernanceBypass: bypass})
		if err != nil {
			err = fmt.Errorf("shorten the retention of version %s of %s: %w", v.VersionID, v.Key, err)
		}
		res.add(err, &res.Shortened)
	}
	return res, nil
}

// ExpireByLifecycle tries to give the bucket a lifecycle rule that expires
// every object and every older version after a day: deletion by the
// store itself instead of by the attacker.
func (a Target) ExpireByLifecycle(ctx context.Context) (Result, error) {
	var res Result
	cfg := lifecycle.NewConfiguration()
	cfg.Rules = []lifecycle.Rule{{
		ID: "attack", Status: "Enabled",
		RuleFilter:                  lifecycle.Filter{Prefix: a.Prefix},
		Expiration:                  lifecycle.Expiration{Days: 1},
		NoncurrentVersionExpiration: lifecycle.NoncurrentVersionExpiration{NoncurrentDays: 1},
	}}
	err := a.Client.SetBucketLifecycle(ctx, a.Bucket, cfg)
	if err != nil {
		err = fmt.Errorf("set a lifecycle rule on %s: %w", a.Bucket, err)
	}
	res.add(err, &res.Lifecycle)
	return res, nil
}

// Sum adds r to s.
func (s *Result) Sum(r Result) {
	s.DeleteMarkers += r.DeleteMarkers
	s.Overwrites += r.Overwrites
	s.Uploads += r.Uploads
	s.Deletes += r.Deletes
	s.Shortened += r.Shortened
	s.Lifecycle += r.Lifecycle
	s.Errors = append(s.Errors, r.Errors...)
}

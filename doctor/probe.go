package doctor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/escrow-backup/escrow/remote/s3"
)

// Bucket is the store doctor examines, reached with the credentials under
// test.
type Bucket struct {
	Client *minio.Client
	Name   string
	// Prefix is the repository's folder ("" for the bucket's root). The
	// canary lives in Prefix/escrow/doctor/, outside restic's folders.
	Prefix string
	// Location names the repository in the report, without secrets.
	Location string
}

// CanaryDir is the folder of the canary objects, relative to the
// repository's prefix.
const CanaryDir = "escrow/doctor/"

// policyHint ends the fixes that take a right away.
const policyHint = " (escrow doctor --policy prints the least-privilege policy)"

// Run examines b. Each run writes two small versions of a new canary
// object, which Object Lock then keeps for the retention period. It
// returns an error only when the store could not be asked at all; every
// answer the store gives becomes part of the report.
func Run(ctx context.Context, b Bucket, now time.Time) (*Report, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	dir := CanaryDir
	if b.Prefix != "" {
		dir = b.Prefix + "/" + CanaryDir
	}
	p := &prober{ctx: ctx, b: b, now: now, dir: dir, key: dir + "canary-" + hex.EncodeToString(rnd[:]),
		r: &Report{Time: now, Repository: b.Location, Checks: []Check{}, Findings: []Finding{}}}
	for _, step := range []func() error{p.protection, p.abilities, p.canaryRetention, p.attacks, p.settings} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("examine %s: %w", b.Location, err)
		}
	}
	p.unproven()
	p.r.conclude()
	return p.r, nil
}

type prober struct {
	ctx context.Context
	b   Bucket
	now time.Time
	dir string // the canary's folder
	key string // the canary
	// canary: key exists (written now, or by an earlier run).
	canary bool
	// v1 and v2 are two versions of the canary, so that probes with and
	// without the governance bypass each act on a version no earlier
	// probe touched (the same one for an earlier run's canary; empty in a
	// bucket without versioning).
	v1, v2 string
	// retained is v1's retention; nil when it has none.
	retained *time.Time

	// What protection reads returned, for re-setting it unchanged.
	versioning string
	lockKnown  bool

	r *Report
}

// answer classifies what the store said: success is Allowed; an S3 error
// response is Refused, or Untested when the probe had no canary to act on
// and the refusal is not access denied (the request may have been allowed
// but found nothing). Anything else (the store did not answer, or failed)
// is returned.
func answer(err error, haveTarget bool) (Result, string, error) {
	if err == nil {
		return Allowed, "", nil
	}
	er := minio.ToErrorResponse(err)
	// A server error or throttling says nothing about the right: a verdict
	// must not count it as a refusal.
	if er.Code == "" || er.StatusCode >= 500 || er.Code == "SlowDown" {
		return "", "", err
	}
	detail := er.Code + ": " + er.Message
	if !haveTarget && er.Code != "AccessDenied" {
		return Untested, "no canary to try it on (" + detail + ")", nil
	}
	return Refused, detail, nil
}

func (p *prober) add(c Check) { p.r.Checks = append(p.r.Checks, c) }

func (p *prober) find(check, problem, fix string, attack bool) {
	p.r.Findings = append(p.r.Findings, Finding{Check: check, Problem: problem, Fix: fix, Attack: attack})
}

const newBucketFix = "create a new bucket with escrow init --object-lock --retention 30d (most stores turn Object Lock on only at creation) and back up there; see docs/tamper-proof.md"

// protection reads versioning and Object Lock.
func (p *prober) protection() error {
	v, err := p.b.Client.GetBucketVersioning(p.ctx, p.b.Name)
	res, detail, err := answer(err, true)
	if err != nil {
		return fmt.Errorf("read versioning: %w", err)
	}
	switch {
	case res != Allowed:
		p.r.Versioning = "unknown"
		p.find("versioning", "could not read whether versioning is on ("+detail+")", "grant s3:GetBucketVersioning"+policyHint, true)
	case v.Enabled():
		p.r.Versioning = "enabled"
	case v.Suspended():
		p.r.Versioning = "suspended"
	default:
		p.r.Versioning = "off"
	}
	p.versioning = p.r.Versioning
	if p.r.Versioning == "off" || p.r.Versioning == "suspended" {
		p.find("versioning", "versioning is "+p.r.Versioning+": overwriting or deleting an object destroys it", newBucketFix, true)
	}

	on, ret, err := s3.ReadObjectLock(p.ctx, p.b.Client, p.b.Name)
	res, detail, err = answer(err, true)
	if err != nil {
		return fmt.Errorf("read the Object Lock configuration: %w", err)
	}
	switch {
	case res != Allowed:
		p.find("object-lock", "could not read the Object Lock configuration ("+detail+")", "grant s3:GetBucketObjectLockConfiguration"+policyHint, true)
		return nil
	case !on:
		p.find("object-lock", "the bucket has no Object Lock: nothing keeps stored versions from credentials that may delete them", newBucketFix, true)
	case ret == nil:
		p.find("retention", "Object Lock is on but there is no default retention: new versions are not locked",
			"set a default retention with owner credentials: escrow init --object-lock --retention 30d on a new repository, or the store's console", true)
	}
	p.lockKnown = true
	p.r.ObjectLock, p.r.Retention = on, ret
	return nil
}

// abilities checks that the credentials can put, get and list: a backup
// needs all three. When they cannot put, the newest canary an earlier run
// left (with other credentials) becomes the target of the attacks, so that
// a read-only credential is still tried on a real version.
func (p *prober) abilities() error {
	content := []byte("escrow doctor canary, written " + p.now.UTC().Format(time.RFC3339) + "\n")
	put := func() (string, error) {
		info, err := p.b.Client.PutObject(p.ctx, p.b.Name, p.key, bytes.NewReader(content), int64(len(content)),
			minio.PutObjectOptions{ContentType: "text/plain", SendContentMd5: true, DisableMultipart: true})
		return info.VersionID, err
	}
	v1, err := put()
	res, detail, err := answer(err, true)
	if err != nil {
		return fmt.Errorf("put the canary %s: %w", p.key, err)
	}
	p.add(Check{Name: "put", Action: "upload the canary " + p.key, Result: res, Want: Allowed, Detail: detail})
	wrote := res == Allowed
	if wrote {
		p.canary, p.v1 = true, v1
		if p.v2, err = put(); err != nil {
			return fmt.Errorf("put the canary %s again: %w", p.key, err)
		}
	} else {
		p.find("put", "these credentials cannot upload ("+detail+"): backups fail", "grant s3:PutObject on the repository's folder"+policyHint, false)
	}

	listed, err := p.list()
	res, detail, err = answer(err, true)
	if err != nil {
		return fmt.Errorf("list %s: %w", p.dir, err)
	}
	if res == Allowed && wrote && !slices.ContainsFunc(listed, func(o minio.ObjectInfo) bool { return o.Key == p.key }) {
		res, detail = Refused, "the listing does not show the canary"
	}
	p.add(Check{Name: "list", Action: "list " + p.dir, Result: res, Want: Allowed, Detail: detail})
	if res == Refused {
		p.find("list", "these credentials cannot list ("+detail+"): backups fail", "grant s3:ListBucket on the bucket"+policyHint, false)
	}
	if !wrote && len(listed) > 0 {
		newest := slices.MaxFunc(listed, func(a, b minio.ObjectInfo) int { return a.LastModified.Compare(b.LastModified) })
		if err := p.oldCanary(newest.Key); err != nil {
			return err
		}
	}

	// Without any canary, reading the repository's config proves reading.
	key := p.key
	if !p.canary {
		key = strings.TrimSuffix(p.dir, CanaryDir) + "config"
	}
	got, err := p.read(key)
	res, detail, err = answer(err, true)
	if err != nil {
		return fmt.Errorf("get %s: %w", key, err)
	}
	switch {
	case res == Allowed && wrote && !bytes.Equal(got, content):
		res, detail = Refused, "the canary read back different bytes"
	case res == Refused && !p.canary && strings.HasPrefix(detail, "NoSuchKey"):
		res, detail = Untested, "no canary and no repository config to read"
	}
	p.add(Check{Name: "get", Action: "download " + key, Result: res, Want: Allowed, Detail: detail})
	if res == Refused {
		p.find("get", "these credentials cannot download ("+detail+"): backups and restores fail", "grant s3:GetObject on the repository's folder"+policyHint, false)
	}
	return nil
}

// oldCanary makes the canary key, written by an earlier run, the target.
func (p *prober) oldCanary(key string) error {
	info, err := p.b.Client.StatObject(p.ctx, p.b.Name, key, minio.StatObjectOptions{})
	res, _, err := answer(err, true)
	if err != nil {
		return fmt.Errorf("stat the earlier canary %s: %w", key, err)
	}
	if res == Allowed {
		p.key, p.canary, p.v1, p.v2 = key, true, info.VersionID, info.VersionID
	}
	return nil
}

func (p *prober) read(key string) ([]byte, error) {
	obj, err := p.b.Client.GetObject(p.ctx, p.b.Name, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	return io.ReadAll(io.LimitReader(obj, 1<<20))
}

// list returns the canaries in the canary folder.
func (p *prober) list() ([]minio.ObjectInfo, error) {
	var keys []minio.ObjectInfo
	for obj := range p.b.Client.ListObjects(p.ctx, p.b.Name, minio.ListObjectsOptions{Prefix: p.dir + "canary-"}) {
		if obj.Err != nil {
			return nil, obj.Err
		}
		keys = append(keys, obj)
	}
	return keys, p.ctx.Err()
}

// canaryRetention checks that the default retention reached the canary:
// proof that new backups are locked, not only a setting.
func (p *prober) canaryRetention() error {
	if !p.canary || !p.r.ObjectLock {
		return nil
	}
	mode, until, err := p.b.Client.GetObjectRetention(p.ctx, p.b.Name, p.key, p.v1)
	res, detail, err := answer(err, true)
	if err != nil {
		return fmt.Errorf("read the canary's retention: %w", err)
	}
	switch {
	case res != Allowed && strings.HasPrefix(detail, "NoSuchObjectLockConfiguration"):
	case res != Allowed:
		p.find("retention", "could not read the canary's retention ("+detail+")", "grant s3:GetObjectRetention"+policyHint, true)
		return nil
	}
	if mode == nil || until == nil {
		if p.r.Retention != nil {
			p.find("retention", "the new canary has no retention although the bucket has a default: new backups are not locked", "check the bucket's Object Lock configuration with the store's console", true)
		}
		return nil
	}
	p.retained = until
	p.r.CanaryRetainUntil = until
	return nil
}

// unproven turns untested attacks into findings when everything else
// looked tamper-proof: a verdict must rest on refusals seen, not assumed.
func (p *prober) unproven() {
	for _, f := range p.r.Findings {
		if f.Attack {
			return
		}
	}
	for _, c := range p.r.Checks {
		if c.Want == Refused && c.Result == Untested {
			p.find(c.Name, "could not test whether this host can "+c.Action+" ("+c.Detail+")",
				"run escrow doctor with the host's own credentials, which need the read rights"+policyHint, true)
		}
	}
}

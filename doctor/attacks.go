package doctor

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/lifecycle"
)

// attack is a probe on the canary that a tamper-proof escrow refuses.
type attack struct {
	name, action string
	// version is the canary version it acts on ("" for the object).
	version string
	// untested, when set, is why it cannot be tried.
	untested string
	do       func(version string) error
	problem  string
	fix      string
	// without is the same attack without the governance bypass: when that
	// one was allowed, this finding would only repeat it.
	without string
}

// attacks tries to destroy or hide the canary. The order matters: each
// version is shortened before it is deleted, so a shortening that works
// still leaves it under retention and the delete probe sees the lock.
func (p *prober) attacks() error {
	v1, v2 := p.v1, p.v2
	if !p.canary {
		// Without a canary, act on a version that never existed: access
		// denied still proves the right is missing, and an allowed
		// request finds nothing to harm.
		v1 = fakeVersion()
		v2 = v1
	}
	shorter := func() *time.Time {
		t := p.now.Add(24 * time.Hour)
		if p.retained != nil {
			t = p.retained.Add(-time.Hour)
		}
		return &t
	}
	noRetention := ""
	if p.canary && p.retained == nil {
		noRetention = "the canary has no retention to shorten"
	}
	governance := minio.Governance
	retention := func(bypass bool) func(string) error {
		return func(v string) error {
			mode := governance
			if p.r.Retention != nil {
				mode = minio.RetentionMode(p.r.Retention.Mode)
			}
			return p.b.Client.PutObjectRetention(p.ctx, p.b.Name, p.key, minio.PutObjectRetentionOptions{
				VersionID: v, Mode: &mode, RetainUntilDate: shorter(), GovernanceBypass: bypass})
		}
	}
	remove := func(bypass bool) func(string) error {
		return func(v string) error {
			return p.b.Client.RemoveObject(p.ctx, p.b.Name, p.key, minio.RemoveObjectOptions{VersionID: v, GovernanceBypass: bypass})
		}
	}
	const bypassFix = "remove s3:BypassGovernanceRetention from the host's policy, or keep versions in compliance mode" + policyHint
	list := []attack{
		{
			name: "delete-marker", action: "put a delete marker on the canary (delete without a version)",
			do:      remove(false),
			problem: "can put delete markers: every object can be made to look deleted (the versions stay; escrow restore --as-of reads them)",
			fix:     "remove s3:DeleteObject from the host's policy" + policyHint,
		},
		{
			name: "shorten-retention", action: "shorten the retention of a canary version", version: v1, untested: noRetention,
			do:      retention(false),
			problem: "can shorten the retention of stored versions, and delete them once it ends",
			fix:     "remove s3:PutObjectRetention from the host's policy" + policyHint,
		},
		{
			name: "delete-version", action: "delete a canary version", version: v1,
			do:      remove(false),
			problem: "can delete stored versions: the backups can be destroyed",
			fix:     "remove s3:DeleteObjectVersion from the host's policy, and keep versions under Object Lock retention" + policyHint,
		},
		{
			name: "shorten-retention-bypass", action: "shorten the retention of a canary version, bypassing governance mode", version: v2, untested: noRetention,
			do:      retention(true),
			problem: "can bypass governance mode and shorten the retention of stored versions",
			fix:     bypassFix, without: "shorten-retention",
		},
		{
			name: "delete-version-bypass", action: "delete a canary version, bypassing governance mode", version: v2,
			do:      remove(true),
			problem: "can bypass governance mode and delete stored versions",
			fix:     bypassFix, without: "delete-version",
		},
	}
	allowed := map[string]bool{}
	for _, a := range list {
		c := Check{Name: a.name, Action: a.action, Want: Refused}
		if a.untested != "" {
			c.Result, c.Detail = Untested, a.untested
			p.add(c)
			continue
		}
		var err error
		c.Result, c.Detail, err = answer(a.do(a.version), p.canary)
		if err != nil {
			return fmt.Errorf("%s: %w", a.action, err)
		}
		p.add(c)
		allowed[a.name] = c.Result == Allowed
		if c.Result == Allowed && !allowed[a.without] {
			p.find(a.name, a.problem, a.fix, true)
		}
	}
	return nil
}

func fakeVersion() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// setting is a probe that tries to change a bucket setting. To do no harm
// when it is allowed, it writes back what it read a moment before; where
// there was nothing to write back it adds something that only touches the
// canary folder, and removes it again.
type setting struct {
	name, action string
	// try makes the change; untested, when not empty, says why it was not
	// tried. undo, when set, reverts an allowed try.
	try     func() (untested string, undo func() error, err error)
	problem string
	fix     string
}

func (p *prober) settings() error {
	c, bucket := p.b.Client, p.b.Name
	list := []setting{
		{
			name: "put-lifecycle", action: "change the bucket's lifecycle rules",
			try: func() (string, func() error, error) {
				cfg, err := c.GetBucketLifecycle(p.ctx, bucket)
				switch code := minio.ToErrorResponse(err).Code; {
				case code == "NoSuchLifecycleConfiguration":
					probe := lifecycle.NewConfiguration()
					probe.Rules = []lifecycle.Rule{{ID: "escrow-doctor-probe", Status: "Enabled",
						RuleFilter: lifecycle.Filter{Prefix: p.dir}, Expiration: lifecycle.Expiration{Days: 36500}}}
					return "", func() error { return c.SetBucketLifecycle(p.ctx, bucket, lifecycle.NewConfiguration()) },
						c.SetBucketLifecycle(p.ctx, bucket, probe)
				case err != nil:
					return unreadable("the lifecycle rules", err)
				}
				return "", nil, c.SetBucketLifecycle(p.ctx, bucket, cfg)
			},
			problem: "can change the lifecycle rules: they can expire old versions once their retention ends, or every version where there is none",
			fix:     "remove s3:PutLifecycleConfiguration from the host's policy" + policyHint,
		},
		{
			name: "put-versioning", action: "change the bucket's versioning",
			try: func() (string, func() error, error) {
				switch p.versioning {
				case "enabled":
					return "", nil, c.EnableVersioning(p.ctx, bucket)
				case "suspended":
					return "", nil, c.SuspendVersioning(p.ctx, bucket)
				case "off":
					return "versioning was never turned on, and turning it on is a change doctor does not make", nil, nil
				}
				return "the versioning state could not be read to write it back", nil, nil
			},
			problem: versioningProblem(p.r.ObjectLock),
			fix:     "remove s3:PutBucketVersioning from the host's policy" + policyHint,
		},
		{
			name: "put-bucket-policy", action: "change the bucket policy",
			try: func() (string, func() error, error) {
				pol, err := c.GetBucketPolicy(p.ctx, bucket)
				switch {
				case err != nil:
					return unreadable("the bucket policy", err)
				case pol != "":
					return "", nil, c.SetBucketPolicy(p.ctx, bucket, pol)
				}
				// No policy: add one that denies nothing anyone does (the
				// tags of one canary that is never tagged), then remove it.
				probe := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Sid":"EscrowDoctorProbe","Effect":"Deny","Principal":{"AWS":["*"]},"Action":["s3:GetObjectTagging"],"Resource":["arn:aws:s3:::%s/%s"]}]}`, bucket, p.key)
				return "", func() error { return c.SetBucketPolicy(p.ctx, bucket, "") }, c.SetBucketPolicy(p.ctx, bucket, probe)
			},
			problem: "can change the bucket policy, and so grant itself any right on the bucket",
			fix:     "remove s3:PutBucketPolicy and s3:DeleteBucketPolicy from the host's policy" + policyHint,
		},
		{
			name: "put-object-lock", action: "change the Object Lock configuration",
			try: func() (string, func() error, error) {
				switch {
				case !p.lockKnown:
					return "the Object Lock configuration could not be read to write it back", nil, nil
				case !p.r.ObjectLock:
					return "the bucket has no Object Lock, and turning it on is a change doctor does not make", nil, nil
				case p.r.Retention == nil:
					return "", nil, c.SetObjectLockConfig(p.ctx, bucket, nil, nil, nil)
				}
				mode, days, unit := minio.RetentionMode(p.r.Retention.Mode), p.r.Retention.Days, minio.Days
				return "", nil, c.SetObjectLockConfig(p.ctx, bucket, &mode, &days, &unit)
			},
			problem: "can change the Object Lock default retention, e.g. to one day for every new version",
			fix:     "remove s3:PutBucketObjectLockConfiguration from the host's policy" + policyHint,
		},
	}
	for _, s := range list {
		chk := Check{Name: s.name, Action: s.action, Want: Refused}
		untested, undo, err := s.try()
		if untested != "" {
			chk.Result, chk.Detail = Untested, untested
			p.add(chk)
			continue
		}
		if chk.Result, chk.Detail, err = answer(err, true); err != nil {
			return fmt.Errorf("%s: %w", s.action, err)
		}
		if chk.Result == Allowed && undo != nil {
			if err := undo(); err != nil {
				chk.Detail = "doctor's probe could not be removed again: " + err.Error()
			}
		}
		p.add(chk)
		if chk.Result == Allowed {
			p.find(s.name, s.problem, s.fix, true)
		}
	}
	return nil
}

func versioningProblem(locked bool) string {
	if locked {
		return "can change versioning (S3 refuses to suspend it while Object Lock is on, but the right should not be there)"
	}
	return "can change versioning: suspended, overwrites and deletes destroy data"
}

// unreadable says why a setting was not tried: doctor only writes back what
// it could read. An error that is not the store's answer is passed on.
func unreadable(what string, err error) (string, func() error, error) {
	er := minio.ToErrorResponse(err)
	if er.Code == "" {
		return "", nil, fmt.Errorf("read %s: %w", what, err)
	}
	return "could not read " + what + " to write it back (" + er.Code + ": " + er.Message + ")", nil, nil
}

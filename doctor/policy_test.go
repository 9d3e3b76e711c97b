package doctor

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestPolicy(t *testing.T) {
	type stmt struct {
		Sid       string
		Action    []string
		Resource  []string
		Condition map[string]map[string][]string
	}
	parse := func(role Role, f Format, prefix string) []stmt {
		t.Helper()
		data, err := Policy("b1", prefix, role, f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct{ Statement []stmt }
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		return doc.Statement
	}
	// No right that deletes, changes retention or settings, or bypasses
	// governance, for either role.
	forbidden := []string{"s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectRetention", "s3:BypassGovernanceRetention",
		"s3:PutLifecycleConfiguration", "s3:PutBucketVersioning", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy",
		"s3:PutBucketObjectLockConfiguration", "s3:*"}
	for _, role := range []Role{HostWriter, Reader} {
		for _, f := range []Format{AWS, MinIO} {
			st := parse(role, f, "site1")
			if len(st) != 3 || st[0].Resource[0] != "arn:aws:s3:::b1/site1/*" || st[1].Resource[0] != "arn:aws:s3:::b1" {
				t.Fatalf("role %d %s: %+v", role, f, st)
			}
			for _, s := range st {
				for _, a := range s.Action {
					if slices.Contains(forbidden, a) {
						t.Errorf("role %d %s grants %s", role, f, a)
					}
				}
			}
			if got := slices.Contains(st[0].Action, "s3:PutObject"); got != (role == HostWriter) {
				t.Errorf("role %d: PutObject %v", role, got)
			}
			// MinIO has no IfExists operators: a prefix condition there
			// would refuse the bucket check every command starts with.
			if cond := st[1].Condition; (cond != nil) != (f == AWS) || f == AWS && !slices.Equal(cond["StringLikeIfExists"]["s3:prefix"], []string{"site1", "site1/*"}) {
				t.Errorf("%s listing condition: %+v", f, cond)
			}
		}
	}
	if st := parse(HostWriter, AWS, ""); st[0].Resource[0] != "arn:aws:s3:::b1/*" || st[1].Condition != nil {
		t.Errorf("no prefix: %+v", st)
	}
	if _, err := Policy("b1", "", HostWriter, "gcs"); err == nil {
		t.Error("unknown format accepted")
	}
}

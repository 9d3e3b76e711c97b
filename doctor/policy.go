package doctor

import (
	"encoding/json"
	"fmt"
)

// Role is what a credential is for.
type Role int

const (
	// HostWriter is the credential on the web server: it puts, gets and
	// lists the repository's objects and reads the bucket's settings, and
	// nothing else. No delete of any kind, no retention, lifecycle,
	// versioning, policy or Object Lock changes, no governance bypass:
	// with Object Lock, that is what makes the escrow tamper-proof.
	HostWriter Role = iota
	// Reader reads and lists every version (restores, as-of reads, a
	// verifier, the owner's key in the recovery kit) and cannot write.
	Reader
)

// Format is the dialect of the policy document.
type Format string

const (
	// AWS is an IAM identity policy (also taken by Wasabi and Ceph).
	AWS Format = "aws"
	// MinIO is a MinIO user policy (mc admin policy create). MinIO has no
	// ...IfExists condition operators, so the listing right is given for
	// the whole bucket (names only: objects outside the prefix still
	// cannot be read), where the AWS form limits it to the prefix.
	MinIO Format = "minio"
)

// Policy returns the least-privilege policy for role on the repository at
// bucket/prefix, as JSON. The tests give their host writer exactly this
// policy, so what escrow doctor --policy prints is what was proven to back
// up and to pass doctor.
func Policy(bucket, prefix string, role Role, format Format) ([]byte, error) {
	if bucket == "" {
		return nil, fmt.Errorf("policy: no bucket")
	}
	if format != AWS && format != MinIO {
		return nil, fmt.Errorf("policy format %q: use aws or minio", format)
	}
	bucketARN := "arn:aws:s3:::" + bucket
	objects := bucketARN + "/*"
	if prefix != "" {
		objects = bucketARN + "/" + prefix + "/*"
	}
	objectActions := []string{"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"}
	listActions := []string{"s3:ListBucket", "s3:ListBucketVersions"}
	if role == HostWriter {
		objectActions = append([]string{"s3:PutObject"}, objectActions...)
	}
	list := statement{Sid: "EscrowList", Effect: "Allow", Action: listActions, Resource: []string{bucketARN}}
	if prefix != "" && format == AWS {
		// IfExists: checking that the bucket exists (HeadBucket) is a
		// listing request without a prefix, and must stay allowed.
		list.Condition = map[string]map[string][]string{
			"StringLikeIfExists": {"s3:prefix": {prefix, prefix + "/*"}},
		}
	}
	p := policyDoc{
		Version: "2012-10-17",
		Statement: []statement{
			{Sid: "EscrowObjects", Effect: "Allow", Action: objectActions, Resource: []string{objects}},
			list,
			{
				// Reading the bucket's settings changes nothing; escrow
				// doctor needs it to prove the protection, and to re-set
				// exactly what it read when it tries to change a setting.
				Sid: "EscrowReadBucketSettings", Effect: "Allow",
				Action: []string{
					"s3:GetBucketLocation", "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration",
					"s3:GetLifecycleConfiguration", "s3:GetBucketPolicy",
				},
				Resource: []string{bucketARN},
			},
		},
	}
	return json.MarshalIndent(p, "", "  ")
}

type policyDoc struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

//go:build linux

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/internal/testenv"
	"github.com/escrow-backup/escrow/remote/s3"
)

// The guided setup asks for the retention and its mode when Object Lock is
// wanted, checks them with the store at once, and creates the bucket so.
func TestSetupGuidedObjectLock(t *testing.T) {
	srv := testenv.MinIO(t)
	h := newSetupHost(t)
	site := h.site("shop", map[string]string{"index.php": "<?php echo 'shop';"})
	kitFile := filepath.Join(h.root, "escrow-kit.txt")
	bucket := newBucketName(t)
	addr := srv.URL(bucket, "site")

	cmd := exec.Command(escrowBin, h.setupArgs("--kit-out", kitFile, "--no-backup", "--retry-for", "2s")...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TERM=dumb"}
	se := startSession(t, cmd)
	se.answer("Repository address: ", addr)
	se.answer("S3 access key ID: ", srv.AccessKey)
	se.answerSecret("S3 secret access key (not shown): ", srv.SecretKey)
	se.answer("Region (empty: us-east-1): ", "")
	se.answer("Use a bucket with Object Lock [y/N]: ", "y")
	se.answer("Keep each version for (days or years, e.g. 30d, 1y) [30d]: ", "30")
	se.answer("Retention mode (governance or compliance) [governance]: ", "")
	se.expect("That did not work: ")
	se.expect("give days or years")
	se.answer("Repository address ["+addr+"]: ", "")
	se.answer("S3 access key ID ["+srv.AccessKey+"]: ", "")
	se.answerSecret("S3 secret access key (not shown; empty keeps the current one): ", "")
	se.answer("Region (empty: us-east-1): ", "")
	se.answer("Use a bucket with Object Lock [Y/n]: ", "")
	se.answer("Keep each version for (days or years, e.g. 30d, 1y) [30]: ", "7d")
	se.answer("Retention mode (governance or compliance) [governance]: ", "")
	se.expect("The store answers and the credentials work.")
	se.answer("Back up "+site, "")
	se.answer("Leave out (comma-separated, - for none) [", "")
	se.answer("Other directories to back up (comma-separated, - for none): ", "")
	se.answer("Write the kit to ["+kitFile+"]: ", "")
	se.answer("Put the S3 secret key in the kit, so the kit alone restores? [Y/n]: ", "n")
	se.expect("Your recovery kit:")
	se.answer("Have you stored the recovery kit off this server? [y/N]: ", "y")

	out := se.finish(3 * time.Minute)
	if on, ret := bucketLock(t, srv, bucket); !on || ret == nil || *ret != (s3.Retention{Mode: s3.Governance, Days: 7}) {
		t.Fatalf("bucket %s: locked %v, retention %+v; want 7 days governance\n%s", bucket, on, ret, out)
	}
	if !strings.Contains(out, "keeps every version 7 days in governance mode") || !strings.Contains(out, "NOT tamper-proof: ") {
		t.Errorf("the guided setup does not show the lock and the doctor's verdict:\n%s", out)
	}
}

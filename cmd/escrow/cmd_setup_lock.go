package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/doctor"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/setup"
)

// exitSetupLock is setup's code for a bucket that exists but does not keep
// versions the way the answers ask (no versioning or Object Lock, another
// default retention or mode): the store is not as required, and setup
// changed nothing in it.
const exitSetupLock = 6

// setupRetention checks the Object Lock answers and returns the default
// retention they ask for, nil without Object Lock.
func setupRetention(pre *setup.Preseed, a *setup.Answers) (*s3.Retention, error) {
	if !a.ObjectLock {
		if a.ObjectLockRetention != "" || a.ObjectLockMode != "" {
			field := "object_lock_retention"
			if a.ObjectLockRetention == "" {
				field = "object_lock_mode"
			}
			return nil, usageError(preseedError(pre, &config.Error{Field: field,
				Msg: "object_lock_retention and object_lock_mode (--retention, --mode) go with object_lock: true (--object-lock)"}))
		}
		return nil, nil
	}
	if !strings.HasPrefix(a.Repository, "s3:") {
		return nil, usageError(preseedError(pre, &config.Error{Field: "object_lock",
			Msg: a.Repository + " is a directory, which has no Object Lock: give an s3: repository, or set object_lock: false"}))
	}
	period, mode := a.Retention()
	r, err := s3.ParseRetention(period, mode)
	if err != nil {
		field := "object_lock_retention"
		if _, merr := s3.ParseRetention("1d", mode); merr != nil {
			field = "object_lock_mode"
		}
		return nil, usageError(preseedError(pre, &config.Error{Field: field, Msg: err.Error()}))
	}
	return &r, nil
}

// checkSetupLock reads how the bucket of c keeps versions and compares it
// with want. A bucket with Object Lock but no default retention passes
// when no repository is there yet: creating the repository sets it.
func checkSetupLock(ctx context.Context, c s3.Config, opts []s3.Option, want s3.Retention, repoExists bool) error {
	be, err := s3.Open(ctx, c, opts...)
	if err != nil {
		return withCode(exitSetupStore, err)
	}
	defer be.Close()
	client, bucket := be.Client(), be.Bucket()
	v, err := client.GetBucketVersioning(ctx, bucket)
	if err != nil {
		return withCode(exitSetupStore, fmt.Errorf("read the versioning of bucket %s (the credential needs s3:GetBucketVersioning): %w", bucket, err))
	}
	on, have, err := s3.ReadObjectLock(ctx, client, bucket)
	if err != nil {
		return withCode(exitSetupStore, fmt.Errorf("read the Object Lock configuration of bucket %s (the credential needs s3:GetBucketObjectLockConfiguration): %w", bucket, err))
	}
	switch {
	case !on || !v.Enabled():
		return withCode(exitSetupLock, fmt.Errorf("bucket %s exists without versioning and Object Lock, so it cannot keep the backups from being deleted. "+
			"Most stores turn Object Lock on only when a bucket is created: give a bucket name that does not exist yet and setup creates it locked (%s), "+
			"or set object_lock: false (--object-lock=false) to go on without that protection. Nothing was changed in the store", bucket, want))
	case have == nil && repoExists:
		return withCode(exitSetupLock, fmt.Errorf("bucket %s has Object Lock but no default retention, so the repository's new versions are not protected; "+
			"set its default retention to %s with the owner's credentials (mc retention set --default %s %dd ALIAS/%s), then run setup again. Nothing was changed in the store",
			bucket, want, want.Mode, want.Days, bucket))
	case have != nil && *have != want:
		return withCode(exitSetupLock, fmt.Errorf("bucket %s keeps new versions %s, not %s as asked. To keep the bucket's setting, give object_lock_retention: %dd and object_lock_mode: %s "+
			"(--retention %dd --mode %s); to change it, set the bucket's default retention with the owner's credentials first. Nothing was changed in the store",
			bucket, have, want, have.Days, strings.ToLower(have.Mode), have.Days, strings.ToLower(have.Mode)))
	}
	return nil
}

// setupDoctorVerdict runs escrow doctor's checks on the store setup
// configured, with the credential the agent will use, prints the one-line
// verdict and saves it in the agent's state directory for escrow status.
// A store that is not tamper-proof does not fail setup (the owner may
// have chosen a plain bucket), but the verdict says so plainly.
func setupDoctorVerdict(ctx context.Context, g *globalOptions, cfg *config.Config) {
	st, _, err := configStore(g, cfg)
	if err != nil {
		g.printf("escrow doctor could not run: %v\n", err)
		return
	}
	now := time.Now().UTC().Truncate(time.Second)
	var r *doctor.Report
	if strings.HasPrefix(st.addr, "s3:") {
		if r, err = doctorS3(ctx, st, now); err != nil {
			fmt.Fprintf(g.env.stderr, "escrow: warning: escrow doctor could not check the store: %v; run escrow doctor --config %s\n", err, cfg.File)
			return
		}
	} else {
		r = doctor.Local(st.addr, now)
	}
	if err := r.Save(cfg.StateDir); err != nil {
		fmt.Fprintf(g.env.stderr, "escrow: warning: save the doctor's verdict: %v\n", err)
	}
	g.printf("%s\n", r.Verdict)
	if !r.TamperProof || !r.CanBackUp {
		g.printf("escrow doctor --config %s shows what could be done to the backups from this server and how to fix it.\n", cfg.File)
	}
}

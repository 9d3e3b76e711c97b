package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

type initOptions struct {
	ObjectLock bool
	Retention  string
	Mode       string
}

func (o *initOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.ObjectLock, "object-lock", false, "S3: create the bucket with versioning and Object Lock, so that stored versions cannot be deleted before the retention ends (see docs/tamper-proof.md)")
	f.StringVar(&o.Retention, "retention", "30d", "with --object-lock: how long each version is kept (days or years: 30d, 1y)")
	f.StringVar(&o.Mode, "mode", "compliance", "with --object-lock: compliance (no one can shorten it) or governance (credentials with the bypass right can)")
}

func newInitCommand(g *globalOptions) *cobra.Command {
	o := &initOptions{}
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new repository",
		Long: `Create a new repository at the address given by --repo or $ESCROW_REPOSITORY.
An existing repository is never overwritten.

For S3, --object-lock makes the escrow tamper-proof: it creates the bucket
with Object Lock (which turns versioning on) and a default retention, so
that no version can be deleted before the retention ends. A bucket that
already exists must have versioning and Object Lock on; most stores can turn
Object Lock on only when a bucket is created. Then give the host credentials
that may only put, get and list (escrow doctor --policy), and check the
result with escrow doctor. See docs/tamper-proof.md.`,
		Example: `  ESCROW_PASSWORD_FILE=/etc/escrow/password escrow init -r s3:https://s3.example.com/backups/site1 --object-lock --retention 30d
  escrow init -r /srv/escrow-repo`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return runInit(cmd, g, o) },
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runInit(cmd *cobra.Command, g *globalOptions, o *initOptions) error {
	ctx := cmd.Context()
	if err := g.refuseAsOf("create a repository"); err != nil {
		return err
	}
	addr, err := g.repoAddress()
	if err != nil {
		return err
	}
	st := store{addr: addr, s3: func() (s3.Config, error) { return g.s3Config(addr) }}
	isS3 := strings.HasPrefix(addr, "s3:")
	if !o.ObjectLock && (cmd.Flags().Changed("retention") || cmd.Flags().Changed("mode")) {
		return usageError(errors.New("--retention and --mode go with --object-lock"))
	}
	var lock *s3.Retention
	if o.ObjectLock {
		if !isS3 {
			return usageError(fmt.Errorf("--object-lock is for S3 repositories; %s is a directory, which has no Object Lock", addr))
		}
		ret, err := s3.ParseRetention(o.Retention, o.Mode)
		if err != nil {
			return usageError(err)
		}
		lock = &ret
		st.s3opts = append(st.s3opts, s3.WithObjectLock(ret))
	}
	password, err := g.password(true)
	if err != nil {
		return err
	}
	if err := repo.CheckNewPassword(password); err != nil {
		return usageError(err)
	}
	be, err := openStore(ctx, st, true, g.retryOptions())
	if err != nil {
		if errors.Is(err, repo.ErrAlreadyInitialized) || errors.Is(err, s3.ErrNoObjectLock) {
			return usageError(err)
		}
		return err
	}
	defer be.Close()
	r, err := repo.Init(ctx, be, password, g.repoOptions())
	if err != nil {
		if errors.Is(err, repo.ErrAlreadyInitialized) {
			return usageError(err)
		}
		return fmt.Errorf("create repository at %s: %w", be.Location(), err)
	}
	defer r.Close()
	if isS3 && !o.ObjectLock && !bucketLocked(ctx, st) {
		fmt.Fprintln(g.env.stderr, "escrow: warning: this escrow is not tamper-proof: the bucket has no Object Lock, so credentials that may delete can destroy the backups; create the repository in a new bucket with --object-lock --retention 30d, and run escrow doctor")
	}
	if g.JSON {
		return printJSON(g, map[string]any{"id": r.Config().ID, "repository": be.Location(), "version": r.Config().Version})
	}
	g.printf("created repository %s at %s\n", r.Config().ID[:10], be.Location())
	if lock != nil {
		g.printf("Object Lock is on: every version is kept %s. Run escrow doctor with the host's credentials to prove it.\n", lock)
	}
	g.printf("Keep the password safe: without it the data cannot be read by anyone.\n")
	return nil
}

// bucketLocked reports whether the bucket of st has Object Lock with a
// default retention. Anything it cannot find out counts as no: the warning
// it gates then points at escrow doctor, which finds out properly.
func bucketLocked(ctx context.Context, st store) bool {
	cfg, err := st.s3()
	if err != nil {
		return false
	}
	be, err := s3.Open(ctx, cfg, st.s3opts...)
	if err != nil {
		return false
	}
	defer be.Close()
	on, ret, err := s3.ReadObjectLock(ctx, be.Client(), be.Bucket())
	return err == nil && on && ret != nil
}

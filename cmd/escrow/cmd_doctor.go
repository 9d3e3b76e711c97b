package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/doctor"
	"github.com/escrow-backup/escrow/remote/s3"
)

type doctorOptions struct {
	Config   string
	StateDir string
	Policy   bool
	Format   string
	ReadOnly bool
}

func (o *doctorOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Config, "config", "", "the agent's configuration file, for its repository, credentials and state_dir (default "+defaultConfigFile+" when no repository is given otherwise)")
	f.StringVar(&o.StateDir, "state-dir", "", "save the verdict in this state directory (default: the configuration's state_dir; none without a configuration)")
	f.BoolVar(&o.Policy, "policy", false, "print the least-privilege access policy for the host's credentials instead, and check nothing")
	f.StringVar(&o.Format, "format", string(doctor.MinIO), "with --policy: aws (an IAM policy, also for Wasabi and Ceph) or minio (mc admin policy create)")
	f.BoolVar(&o.ReadOnly, "read-only", false, "with --policy: the policy of a read-only credential (restores, the owner's key in the recovery kit) instead")
}

func newDoctorCommand(g *globalOptions) *cobra.Command {
	o := &doctorOptions{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Prove what the credentials in use can and cannot do to the escrow",
		Long: `Check, by trying, that the escrow is tamper-proof from this host: that the
bucket keeps versions (versioning, Object Lock default retention), and that
the S3 credentials in use cannot delete a version, put a delete marker,
shorten retention, bypass governance mode, or change the lifecycle,
versioning, bucket policy or Object Lock configuration, while they can still
put, get and list. The probes act on a canary object in
PREFIX/escrow/doctor/, outside the repository's folders; a probe that is
unexpectedly allowed writes back exactly the setting it read before.

The first line is the verdict; then what was tried, and for each problem
found, what an attacker on this host could do and how to fix it. With a
configuration (--config, or --state-dir) the verdict is also saved to
STATE_DIR/doctor.json for escrow status.

--policy prints the least-privilege policy for the host's credentials,
scoped to the repository's bucket and prefix. See docs/tamper-proof.md.

Exit status: 0 tamper-proof and able to back up; 5 not tamper-proof, or the
credentials cannot back up; 1 the checks could not run; 2 usage errors.`,
		Example: `  escrow doctor
  escrow doctor --config /etc/escrow/escrow.yaml --json
  escrow doctor --policy --format aws > host-policy.json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Policy {
				return printPolicy(g, o)
			}
			if cmd.Flags().Changed("format") || o.ReadOnly {
				return usageError(errors.New("--format and --read-only go with --policy"))
			}
			return runDoctor(cmd.Context(), g, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

// doctorTarget is the repository doctor examines and where it saves the
// verdict ("" for nowhere).
type doctorTarget struct {
	st       store
	stateDir string
}

func resolveDoctorTarget(g *globalOptions, o *doctorOptions) (doctorTarget, error) {
	cfg, err := kitConfig(g, o.Config)
	if err != nil {
		return doctorTarget{}, err
	}
	t := doctorTarget{stateDir: o.StateDir}
	if cfg != nil && t.stateDir == "" {
		t.stateDir = cfg.StateDir
	}
	if cfg == nil {
		addr, err := g.repoAddress()
		if err != nil {
			return t, err
		}
		t.st = store{addr: addr, s3: func() (s3.Config, error) { return g.s3Config(addr) }}
		return t, nil
	}
	st, _, err := configStore(g, cfg)
	t.st = st
	return t, err
}

func runDoctor(ctx context.Context, g *globalOptions, o *doctorOptions) error {
	t, err := resolveDoctorTarget(g, o)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	var r *doctor.Report
	if strings.HasPrefix(t.st.addr, "s3:") {
		if r, err = doctorS3(ctx, t.st, now); err != nil {
			return err
		}
	} else {
		// Opening checks that a repository is there (exit 10 if not).
		be, err := openStore(ctx, t.st, false, g.retryOptions())
		if err != nil {
			return err
		}
		r = doctor.Local(be.Location(), now)
		be.Close()
	}
	if t.stateDir != "" {
		if err := r.Save(t.stateDir); err != nil {
			return err
		}
	}
	if g.JSON {
		if err := printJSON(g, r); err != nil {
			return err
		}
	} else {
		printReport(g, r)
	}
	if !r.TamperProof || !r.CanBackUp {
		return withCode(exitNotTamperProof, errors.New(r.Verdict))
	}
	return nil
}

func doctorS3(ctx context.Context, st store, now time.Time) (*doctor.Report, error) {
	cfg, err := st.s3()
	if err != nil {
		return nil, usageError(err)
	}
	if cfg.KeyID == "" || cfg.Secret == "" {
		return nil, usageError(fmt.Errorf("no S3 credentials for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the host's credentials", cfg.Location()))
	}
	be, err := s3.Open(ctx, cfg, st.s3opts...)
	if err != nil {
		return nil, err
	}
	defer be.Close()
	return doctor.Run(ctx, doctor.Bucket{Client: be.Client(), Name: be.Bucket(), Prefix: be.Prefix(), Location: be.Location()}, now)
}

func printReport(g *globalOptions, r *doctor.Report) {
	g.printf("%s\n\n", r.Verdict)
	g.printf("repository: %s\n", r.Repository)
	if r.Versioning != "" {
		lock := "off"
		switch {
		case r.ObjectLock && r.Retention != nil:
			lock = "on, new versions kept " + r.Retention.String()
		case r.ObjectLock:
			lock = "on, without a default retention"
		}
		g.printf("versioning: %s\nObject Lock: %s\n", r.Versioning, lock)
		if u := r.CanaryRetainUntil; u != nil {
			g.printf("the canary written now is kept until %s\n", u.UTC().Format(time.RFC3339))
		}
	}
	if len(r.Checks) > 0 {
		g.printf("\ntried:\n")
		for _, c := range r.Checks {
			mark := "ok  "
			if c.Result != c.Want {
				mark = "FAIL"
			}
			line := fmt.Sprintf("  %s %-8s %s", mark, c.Result, c.Action)
			if c.Detail != "" {
				line += " (" + c.Detail + ")"
			}
			g.printf("%s\n", line)
		}
	}
	if len(r.Findings) > 0 {
		g.printf("\nto fix:\n")
		for _, f := range r.Findings {
			g.printf("  - %s\n    fix: %s\n", f.Problem, f.Fix)
		}
	}
}

func printPolicy(g *globalOptions, o *doctorOptions) error {
	t, err := resolveDoctorTarget(g, o)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(t.st.addr, "s3:") {
		return usageError(fmt.Errorf("the repository %s is a directory: access policies are for S3 buckets", t.st.addr))
	}
	cfg, err := s3.ParseURL(t.st.addr)
	if err != nil {
		return usageError(err)
	}
	role := doctor.HostWriter
	if o.ReadOnly {
		role = doctor.Reader
	}
	pol, err := doctor.Policy(cfg.Bucket, cfg.Prefix, role, doctor.Format(o.Format))
	if err != nil {
		return usageError(err)
	}
	_, err = fmt.Fprintf(g.env.stdout, "%s\n", pol)
	return err
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/setup"
)

// Exit codes of escrow setup, for the scripts that run it unattended
// (docs/resellers.md). 2 is the usage code of every command.
const (
	exitSetupStore   = 3 // the store is unreachable or refuses the credentials
	exitSetupRepo    = 4 // the repository cannot be opened or created
	exitSetupService = 5 // the service could not be installed or started
)

type setupOptions struct {
	Preseed     string
	Yes         bool
	Config      string
	Sources     []string
	KitOut      string
	ObjectLock  bool
	Retention   string
	Mode        string
	NoService   bool
	ServiceRoot string
	StateDir    string
	NoBackup    bool
	BackupWait  time.Duration
	WWW, Nginx  []string
	Apache      []string
	// changed* record flags given on the command line, which override
	// the preseed.
	changedLock, changedKitOut, changedRetention, changedMode bool
}

func (o *setupOptions) AddFlags(f *pflag.FlagSet) {
	d := setup.DefaultSearch()
	f.StringVar(&o.Preseed, "preseed", "", "take the answers from this YAML file (docs/resellers.md)")
	f.BoolVarP(&o.Yes, "yes", "y", false, "ask nothing: the answers come from --preseed, the flags and the environment")
	f.StringVar(&o.Config, "config", defaultConfigFile, "the agent's configuration file to write; the secrets go next to it")
	f.StringArrayVar(&o.Sources, "source", nil, "a directory to back up (repeatable; adds to the preseed's)")
	f.StringVar(&o.KitOut, "kit-out", "/root/escrow-kit.txt", "write the recovery kit to this file (mode 0600)")
	f.BoolVar(&o.ObjectLock, "object-lock", false, "use a bucket with versioning and Object Lock (WORM) retention: created so if missing, refused (exit 6) if it exists otherwise")
	f.StringVar(&o.Retention, "retention", setup.DefaultRetention, "with --object-lock: how long each version is kept (days or years: 30d, 1y)")
	f.StringVar(&o.Mode, "mode", setup.DefaultLockMode, "with --object-lock: governance (the owner's bypass right can remove versions early) or compliance (no one can)")
	f.BoolVar(&o.NoService, "no-service", false, "do not install and start the system service (containers, tests)")
	f.StringVar(&o.ServiceRoot, "service-root", "/", "write the service's files below this directory instead of installing on this system, and start nothing (images, tests)")
	f.StringVar(&o.StateDir, "state-dir", "", "the agent's state directory (default "+config.DefaultStateDir+")")
	f.BoolVar(&o.NoBackup, "no-backup", false, "do not run the first backup")
	f.DurationVar(&o.BackupWait, "backup-wait", 30*time.Minute, "how long to follow the service's first backup")
	f.StringArrayVar(&o.WWW, "www-dir", d.WWW, "folders whose subfolders are sites (repeatable)")
	f.StringArrayVar(&o.Nginx, "nginx-dir", d.Nginx, "folders of nginx site configurations (repeatable)")
	f.StringArrayVar(&o.Apache, "apache-dir", d.Apache, "folders of Apache site configurations (repeatable)")
}

func newSetupCommand(g *globalOptions) *cobra.Command {
	o := &setupOptions{}
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Set up the agent: storage, what to protect, the recovery kit, the service (as root)",
		Long: `Set up escrow on this server. On a terminal it asks for the storage address
and credentials (and checks them at once), proposes the web sites found in
/var/www and the nginx and Apache configurations with their databases
(wp-config.php, .env), writes the configuration (` + defaultConfigFile + `, 0600) and
the secrets next to it, generates the repository password on this host,
creates the repository (an existing one is opened, never created again),
writes and shows the recovery kit, installs and starts the service, and
follows the first backup.

With --preseed FILE --yes it asks nothing (docs/resellers.md). Running it
again updates the configuration and keeps the password and the repository.

Exit status: 0 done; 2 bad answers (preseed, flags) or configuration; 3 the
store is unreachable or refuses the credentials; 4 the repository cannot be
opened or created (e.g. it exists with another password); 5 the service could
not be installed or started; 6 the bucket exists without the Object Lock asked
for (no versioning or Object Lock, or another default retention or mode);
1 anything else (e.g. the first backup failed).

With --object-lock (preseed object_lock: true) a missing bucket is created
with versioning, Object Lock and a default retention (--retention, default
30d; --mode, default governance); an existing one must already be exactly
so. After setup, escrow doctor's checks run with the agent's credential and
the one-line verdict is shown and saved for escrow status.`,
		Example: `  sudo escrow setup
  sudo escrow setup --preseed /root/customer-42.yaml --yes
  sudo AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... escrow setup --yes \
      --repo s3:https://s3.example.com/backups/site1 --source /var/www/site1`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.changedLock = cmd.Flags().Changed("object-lock")
			o.changedKitOut = cmd.Flags().Changed("kit-out")
			o.changedRetention = cmd.Flags().Changed("retention")
			o.changedMode = cmd.Flags().Changed("mode")
			return runSetup(cmd.Context(), g, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runSetup(ctx context.Context, g *globalOptions, o *setupOptions) error {
	if !filepath.IsAbs(o.Config) {
		return usageError(fmt.Errorf("--config %s: give an absolute path (the service reads it from any directory)", o.Config))
	}
	paths := setup.Paths{ConfigFile: filepath.Clean(o.Config), PasswordFile: g.PasswordFile}
	if paths.PasswordFile == "" {
		paths.PasswordFile = g.env.getenv("ESCROW_PASSWORD_FILE")
	}
	old, err := os.ReadFile(paths.ConfigFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read the existing configuration: %w", err)
	}
	sa, err := setupAnswers(ctx, g, o, paths, old)
	if err != nil {
		return err
	}
	a, pre := &sa.Answers, sa.pre
	lock, err := setupRetention(pre, a)
	if err != nil {
		return err
	}
	if lock != nil {
		// Before anything is written: the bucket is created locked, or
		// must already be locked as asked.
		be, _, err := answersStore(ctx, g, a)
		if err != nil {
			return err
		}
		be.Close()
		g.printf("Object Lock: bucket %s keeps every version %s.\n", lockBucket(a.Repository), lock)
	}
	files, err := writeSetupFiles(g, pre, a, paths, old)
	if err != nil {
		return err
	}
	cfg := files.cfg
	sr, err := openOrInitRepo(ctx, g, files)
	if err != nil {
		return err
	}
	defer closeRepo(sr.r)

	// The doctor's verdict, with the credential the agent will use: what
	// this server could do to the backups.
	setupDoctorVerdict(ctx, g, cfg)

	if err := deliverSetupKit(ctx, g, sa.term, sr, a, cfg); err != nil {
		return err
	}
	install := setup.On(a.Service, true) && !o.NoService
	onSystem := filepath.Clean(o.ServiceRoot) == "/"
	started := time.Now()
	if install {
		if err := runInstall(g, installOptions{Config: paths.ConfigFile, Root: o.ServiceRoot}); err != nil {
			return withCode(exitSetupService, fmt.Errorf("install the service: %w", err))
		}
		if onSystem {
			if err := startService(g, cfg); err != nil {
				return withCode(exitSetupService, err)
			}
		}
	}
	if !setup.On(a.FirstBackup, true) || o.NoBackup {
		g.printf("Setup is done. The first backup was skipped (--no-backup).\n")
		return nil
	}
	if install && onSystem {
		return followServiceBackup(ctx, g, cfg, started, o.BackupWait)
	}
	return firstBackup(ctx, g, sr.r, cfg)
}

// answers are setup's answers with where they came from.
type answers struct {
	setup.Answers
	pre  *setup.Preseed // nil without --preseed
	term setup.Terminal // nil: unattended
}

// setupAnswers gathers the answers: from the preseed or the existing
// configuration, the flags and the environment, then the questions on the
// terminal (checking the store at once) unless --yes.
func setupAnswers(ctx context.Context, g *globalOptions, o *setupOptions, paths setup.Paths, old []byte) (*answers, error) {
	sa := &answers{}
	a := &sa.Answers
	if o.Preseed != "" {
		var err error
		if sa.pre, err = setup.ReadPreseed(o.Preseed); err != nil {
			return nil, usageError(err)
		}
		*a = sa.pre.Answers
		warnPreseedMode(g, sa.pre)
	} else if old != nil {
		c, err := config.Parse(paths.ConfigFile, old)
		if err != nil {
			return nil, configProblems(g, paths.ConfigFile, err)
		}
		*a = setup.FromConfig(c)
	}
	o.applyTo(g, a)
	search := setup.Search{WWW: o.WWW, Nginx: o.Nginx, Apache: o.Apache}
	if o.Yes {
		if setup.On(a.Discover, len(a.Sources) == 0 && len(a.Databases) == 0) {
			setup.Merge(a, setup.FindSites(search))
		}
		if a.Kit.File == "" && len(a.Kit.Command) == 0 {
			return nil, usageError(errors.New("the recovery kit would go nowhere: give kit.file or kit.command in the preseed, or --kit-out (the password is generated on this host and is in no other place)"))
		}
	} else if err := interview(ctx, g, o, sa, search); err != nil {
		return nil, err
	}
	if err := readSetupSecrets(a); err != nil {
		return nil, usageError(preseedError(sa.pre, err))
	}
	if strings.HasPrefix(a.Repository, "s3:") && (a.S3.AccessKeyID == "" || a.S3.SecretAccessKey == "") {
		// The service runs without the caller's environment: the
		// credential must be in the configuration's files.
		return nil, usageError(preseedError(sa.pre, &config.Error{Field: "s3", Msg: "the S3 credential is missing: give s3.access_key_id and s3.secret_access_key (or secret_access_key_file), or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}))
	}
	return sa, nil
}

// interview asks the questions on the terminal.
func interview(ctx context.Context, g *globalOptions, o *setupOptions, sa *answers, search setup.Search) error {
	if !isTerminal(g.env.stdin) {
		return usageError(errors.New("escrow setup asks questions on a terminal; to run it from a script use --preseed FILE --yes (docs/resellers.md)"))
	}
	t := setup.NewTerminal(g.env.stdin, g.env.stdout)
	sa.term = t
	a := &sa.Answers
	// The secret of a previous run is the default: an empty answer keeps
	// it.
	if err := readSetupSecrets(a); err != nil {
		t.Say("escrow: %v; it will be asked for.\n", err)
		a.S3.SecretAccessKeyFile = ""
	}
	check := func(ctx context.Context, a *setup.Answers) error {
		if err := readSetupSecrets(a); err != nil {
			return err
		}
		be, _, err := answersStore(ctx, g, a)
		if err != nil {
			return err
		}
		return be.Close()
	}
	if err := setup.Interview(ctx, t, a, setup.FindSites(search), check); err != nil {
		return err
	}
	if a.Service == nil && !o.NoService {
		on, err := setup.AskYesNo(t, "Install and start the service now", true)
		if err != nil {
			return err
		}
		a.Service = &on
	}
	return nil
}

// applyTo overrides the answers with the flags and environment that were
// given.
func (o *setupOptions) applyTo(g *globalOptions, a *setup.Answers) {
	if g.Repo != "" {
		a.Repository = g.Repo
	} else if r := g.env.getenv("ESCROW_REPOSITORY"); r != "" && a.Repository == "" {
		a.Repository = r
	}
	if k := g.env.getenv("AWS_ACCESS_KEY_ID"); k != "" && a.S3.AccessKeyID == "" {
		a.S3.AccessKeyID = k
		if a.S3.SecretAccessKey == "" && a.S3.SecretAccessKeyFile == "" {
			a.S3.SecretAccessKey = g.env.getenv("AWS_SECRET_ACCESS_KEY")
		}
	}
	if r := g.env.getenv("AWS_DEFAULT_REGION"); r != "" && a.S3.Region == "" {
		a.S3.Region = r
	}
	if p := g.env.getenv("ESCROW_PASSWORD"); p != "" && a.Password == "" {
		a.Password = p
	}
	for _, s := range o.Sources {
		abs, err := filepath.Abs(s)
		if err == nil && !slices.ContainsFunc(a.Sources, func(s setup.Source) bool { return s.Path == abs }) {
			a.Sources = append(a.Sources, setup.SiteSource(setup.Site{Path: abs}))
		}
	}
	if o.changedLock {
		a.ObjectLock = o.ObjectLock
	}
	if o.changedRetention {
		a.ObjectLockRetention = o.Retention
	}
	if o.changedMode {
		a.ObjectLockMode = o.Mode
	}
	if o.changedKitOut || a.Kit.File == "" && len(a.Kit.Command) == 0 {
		a.Kit.File = o.KitOut
	}
	if o.StateDir != "" {
		a.StateDir = o.StateDir
	}
	if o.NoService {
		off := false
		a.Service = &off
	}
}

// readSetupSecrets reads the secrets the answers name by file.
func readSetupSecrets(a *setup.Answers) error {
	f := a.S3.SecretAccessKeyFile
	if f == "" || a.S3.SecretAccessKey != "" {
		return nil
	}
	bad := func(msg string) error { return &config.Error{Field: "s3.secret_access_key_file", Msg: f + " " + msg} }
	data, err := os.ReadFile(f)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return bad("cannot be read: " + err.Error())
	}
	secret := strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0])
	if secret == "" {
		return bad("is empty; its first line must be the S3 secret access key")
	}
	a.S3.SecretAccessKey = secret
	return nil
}

// answersStore connects to the store the answers name, creating the bucket
// or directory if it is missing; exists reports a repository already there.
func answersStore(ctx context.Context, g *globalOptions, a *setup.Answers) (remote.Backend, bool, error) {
	st := store{addr: a.Repository}
	if strings.HasPrefix(a.Repository, "s3:") {
		c, err := s3.ParseURL(a.Repository)
		if err != nil {
			return nil, false, usageError(err)
		}
		c.KeyID, c.Secret, c.Region = a.S3.AccessKeyID, a.S3.SecretAccessKey, a.S3.Region
		if c.Region == "" {
			c.Region = "us-east-1"
		}
		st.s3 = func() (s3.Config, error) { return c, nil }
		if a.S3.CAFile != "" {
			pool, err := (&config.Config{S3: config.S3{CAFile: a.S3.CAFile}}).RootCAs()
			if err != nil {
				return nil, false, usageError(err)
			}
			st.s3opts = append(st.s3opts, s3.WithRootCAs(pool))
		}
		lock, err := setupRetention(nil, a)
		if err != nil {
			return nil, false, err
		}
		if lock != nil {
			opts := st.s3opts
			st.s3opts = append(st.s3opts, s3.WithObjectLock(*lock))
			be, exists, err := connectStore(ctx, g, st)
			if err == nil || errors.Is(err, s3.ErrNoObjectLock) {
				// Say what the bucket is and how to fix it, in setup's
				// terms; a bucket just created passes.
				if lerr := checkSetupLock(ctx, c, opts, *lock, exists); lerr != nil {
					if be != nil {
						be.Close()
					}
					return nil, false, lerr
				}
			}
			return be, exists, err
		}
	}
	return connectStore(ctx, g, st)
}

// lockBucket is the bucket of an s3: address, for messages.
func lockBucket(addr string) string {
	c, err := s3.ParseURL(addr)
	if err != nil {
		return addr
	}
	return c.Bucket
}

// connectStore opens st for setup: the bucket (or directory) is created if
// missing, and an existing repository is reported, never touched.
func connectStore(ctx context.Context, g *globalOptions, st store) (remote.Backend, bool, error) {
	be, err := openStore(ctx, st, true, g.retryOptions())
	if errors.Is(err, remote.ErrExists) {
		be, err = openStore(ctx, st, false, g.retryOptions())
		if err == nil {
			return be, true, nil
		}
	}
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) && ee.code == exitUsage {
			return nil, false, err
		}
		return nil, false, withCode(exitSetupStore, err)
	}
	return be, false, nil
}

// preseedError points the configuration's problems at the preseed's lines.
func preseedError(pre *setup.Preseed, err error) error {
	if pre == nil {
		return err
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var ce *config.Error
		var pe *setup.PreseedError
		switch {
		case errors.As(e, &pe):
			out = append(out, pe)
		case errors.As(e, &ce):
			msg := ce.Msg
			if ce.Field != "" {
				msg = ce.Field + ": " + msg
			}
			out = append(out, &setup.PreseedError{File: pre.File, Line: pre.Line(ce.Field), Msg: msg})
		default:
			out = append(out, &setup.PreseedError{File: pre.File, Msg: e.Error()})
		}
	}
	return errors.Join(out...)
}

// warnPreseedMode warns about a preseed that holds secrets and that other
// users of this machine can read.
func warnPreseedMode(g *globalOptions, pre *setup.Preseed) {
	secret := pre.Password != "" || pre.S3.SecretAccessKey != ""
	for _, db := range pre.Databases {
		secret = secret || db.Password != ""
	}
	if fi, err := os.Stat(pre.File); err == nil && secret && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(g.env.stderr, "escrow: warning: %s holds secrets and other users of this machine can read it (mode %04o): chmod 600 it, or delete it after setup\n", pre.File, fi.Mode().Perm())
	}
}

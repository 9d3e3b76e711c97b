package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/kit"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

type kitOptions struct {
	Config             string
	Out                string
	HTML               string
	Force              bool
	IncludeCredentials bool
	ReadKeyID          string
	ReadSecretFile     string
}

func (o *kitOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Out, "out", "", "write the kit to this file (mode 0600) instead of showing it")
	f.StringVar(&o.HTML, "html", "", "also write a printable page with a QR code to this file (mode 0600)")
	f.BoolVar(&o.Force, "force", false, "replace --out and --html files that exist")
	f.BoolVar(&o.IncludeCredentials, "include-credentials", false, "put the S3 credential in use, secret included, in the kit (default: its access key ID only)")
	f.StringVar(&o.ReadKeyID, "read-access-key-id", "", "put this S3 credential in the kit instead, e.g. the owner's read-only key (with --read-secret-file)")
	f.StringVar(&o.ReadSecretFile, "read-secret-file", "", "file holding the secret of --read-access-key-id")
}

func newKitCommand(g *globalOptions) *cobra.Command {
	o := &kitOptions{}
	cmd := &cobra.Command{
		Use:   "kit",
		Short: "Show or write the recovery kit: what restores the escrow without this server",
		Long: `Show the recovery kit, or write it with --out (and a printable page with a QR
code with --html): the repository's address, bucket and region, its ID, the
password, and the S3 credential that reads it (its access key ID only,
unless --include-credentials or --read-access-key-id put a whole credential
in the kit). With it, "escrow restore latest --kit FILE --target DIR"
restores on any machine.

The repository is opened first: a wrong password (exit 12) or an unreachable
store writes nothing. The repository, password and credential come from the
agent's configuration (--config, or /etc/escrow/escrow.yaml when no
repository is given otherwise) or from --repo, --password-file, --kit and
the environment.

Store the kit off this server, then run "escrow kit confirm": until then
escrow status and the agent's log keep warning. See docs/recovery-kit.md.`,
		Example: `  escrow kit --config /etc/escrow/escrow.yaml --out /root/escrow-kit.txt --html /root/escrow-kit.html
  escrow kit --include-credentials > /dev/null   # check only: opens the repository
  escrow kit confirm`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error { return runKit(cmd.Context(), g, o) },
	}
	cmd.Flags().StringVar(&o.Config, "config", "", "the agent's configuration file (default "+defaultConfigFile+" when no repository is given otherwise)")
	o.AddFlags(cmd.Flags())
	cmd.AddCommand(newKitConfirmCommand(g))
	return cmd
}

func runKit(ctx context.Context, g *globalOptions, o *kitOptions) error {
	if (o.ReadKeyID == "") != (o.ReadSecretFile == "") {
		return usageError(errors.New("--read-access-key-id and --read-secret-file go together"))
	}
	if o.ReadKeyID != "" && o.IncludeCredentials {
		return usageError(errors.New("--include-credentials puts the credential in use in the kit, --read-access-key-id another one: choose one"))
	}
	// Refuse before the slow part, as the write itself would.
	for _, f := range []string{o.Out, o.HTML} {
		if _, err := os.Lstat(f); f != "" && err == nil && !o.Force {
			return usageError(fmt.Errorf("%s already exists (use --force to replace it)", f))
		}
	}
	cfg, err := kitConfig(g, o.Config)
	if err != nil {
		return err
	}
	sr, err := openForKit(ctx, g, cfg)
	if err != nil {
		return err
	}
	defer closeRepo(sr.r)
	k := newKit(sr, o.IncludeCredentials)
	if sr.s3 == nil && (o.IncludeCredentials || o.ReadKeyID != "") {
		return usageError(fmt.Errorf("the repository at %s is a directory: there is no S3 credential to put in the kit", k.Repository))
	}
	if o.ReadKeyID != "" {
		if err := useReadCredential(ctx, g, k, *sr.s3, o); err != nil {
			return err
		}
	}
	if k.SessionToken != "" {
		fmt.Fprintln(g.env.stderr, "escrow: warning: the S3 credential in the kit is temporary (it has a session token) and will expire; prefer a long-lived read-only key (--read-access-key-id)")
	}
	text, err := kitText(k)
	if err != nil {
		return err
	}
	wrote := false
	if o.Out != "" {
		if err := kit.WriteFile(o.Out, text, o.Force); err != nil {
			return err
		}
		g.printf("wrote the recovery kit to %s (readable by you only)\n", o.Out)
		wrote = true
	}
	if o.HTML != "" {
		page, err := k.HTML()
		if err != nil {
			return err
		}
		if err := kit.WriteFile(o.HTML, page, o.Force); err != nil {
			return err
		}
		g.printf("wrote the printable page to %s (readable by you only)\n", o.HTML)
		wrote = true
	}
	if !wrote {
		if f, ok := g.env.stdout.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
				// escrow kit > FILE: the shell made FILE with its umask.
				if err := kit.PrivateFile(f); err != nil {
					return err
				}
			}
		}
		if _, err := g.env.stdout.Write(text); err != nil {
			return err
		}
	}
	confirm := "escrow kit confirm"
	if cfg != nil {
		confirm += " --config " + cfg.File
	}
	fmt.Fprintf(g.env.stderr, "\nStore the kit OFF this server (print it, or keep it in a password manager), remove any copy left here, then run: %s\n", confirm)
	return nil
}

// newKit is the kit of the open repository sr: its access key ID, and with
// includeCredentials the whole S3 credential.
func newKit(sr *kitRepo, includeCredentials bool) *kit.Kit {
	k := &kit.Kit{
		Repository:   sr.r.Backend().Location(),
		RepositoryID: sr.r.Config().ID,
		KeyID:        sr.r.KeyID().String(),
		Created:      time.Now().UTC().Truncate(time.Second),
		Host:         sr.host,
		Password:     sr.password,
	}
	if c := sr.s3; c != nil {
		k.Region, k.AccessKeyID = c.Region, c.KeyID
		if includeCredentials {
			k.SecretAccessKey, k.SessionToken = c.Secret, c.SessionToken
		}
	}
	return k
}

// kitText writes the kit and reads it back: what is written must parse into
// the repository, ID, password and credential that were just checked.
func kitText(k *kit.Kit) ([]byte, error) {
	text, err := k.MarshalText()
	if err != nil {
		return nil, err
	}
	back, err := kit.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("the kit does not read back: %w", err)
	}
	if back.Repository != k.Repository || back.RepositoryID != k.RepositoryID || back.Password != k.Password ||
		back.AccessKeyID != k.AccessKeyID || back.SecretAccessKey != k.SecretAccessKey {
		return nil, errors.New("the kit does not read back as written")
	}
	return text, nil
}

// useReadCredential puts another S3 credential in the kit after checking
// that it opens the repository with the kit's password.
func useReadCredential(ctx context.Context, g *globalOptions, k *kit.Kit, in s3.Config, o *kitOptions) error {
	secret, err := readPasswordFile(o.ReadSecretFile)
	if err != nil {
		return usageError(fmt.Errorf("--read-secret-file: %w", err))
	}
	c := in
	c.KeyID, c.Secret, c.SessionToken = o.ReadKeyID, secret, ""
	be, err := openStore(ctx, store{addr: k.Repository, s3: func() (s3.Config, error) { return c, nil }}, false, g.retryOptions())
	if err != nil {
		return fmt.Errorf("the credential %s cannot reach the repository: %w", o.ReadKeyID, err)
	}
	r, err := repo.Open(ctx, be, k.Password, g.repoOptions())
	if err != nil {
		be.Close()
		return fmt.Errorf("the credential %s cannot read the repository: %w", o.ReadKeyID, err)
	}
	defer closeRepo(r)
	if r.Config().ID != k.RepositoryID {
		return fmt.Errorf("the credential %s reads another repository (%s)", o.ReadKeyID, shortID(r.Config().ID))
	}
	k.AccessKeyID, k.SecretAccessKey, k.SessionToken = c.KeyID, c.Secret, ""
	return nil
}

func newKitConfirmCommand(g *globalOptions) *cobra.Command {
	var file, stateDir string
	cmd := &cobra.Command{
		Use:   "confirm",
		Short: "Record that the recovery kit is stored off this server",
		Long: `Record, in the agent's state directory, that the owner has stored the
recovery kit of the agent's repository somewhere other than this server.
Until then escrow status reports a problem and the agent's log warns.

The repository is opened (with the agent's configuration, or --kit to check
the stored kit itself) so that the confirmation names the repository it is
for: an agent pointed at another repository warns again.`,
		Example: `  escrow kit confirm --config /etc/escrow/escrow.yaml
  escrow kit confirm --config /etc/escrow/escrow.yaml --kit /media/usb/escrow-kit.txt`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cfg, err := kitConfig(g, file)
			if err != nil {
				return err
			}
			dir := stateDir
			switch {
			case dir != "":
			case cfg != nil:
				dir = cfg.StateDir
			default:
				dir = config.DefaultStateDir
			}
			sr, err := openForKit(ctx, g, cfg)
			if err != nil {
				return err
			}
			defer closeRepo(sr.r)
			c := kit.Confirmation{Time: time.Now().UTC().Truncate(time.Second), RepositoryID: sr.r.Config().ID,
				Repository: sr.r.Backend().Location(), KeyID: sr.r.KeyID().String()}
			if err := kit.Confirm(dir, c); err != nil {
				return err
			}
			g.printf("confirmed the recovery kit of repository %s (%s) in %s\n", shortID(c.RepositoryID), c.Repository, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", "", "the agent's configuration file, for its repository and state_dir (default "+defaultConfigFile+" when no repository is given otherwise)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "the agent's state directory (default: the configuration's state_dir)")
	return cmd
}

// kitConfig reads the agent's configuration for the kit commands: file, or
// the default one when it exists and neither --repo, --kit nor
// $ESCROW_REPOSITORY names a repository. It returns nil when there is none.
func kitConfig(g *globalOptions, file string) (*config.Config, error) {
	if file == "" {
		if g.Repo != "" || g.Kit != "" || g.env.getenv("ESCROW_REPOSITORY") != "" {
			return nil, nil
		}
		if _, err := os.Stat(defaultConfigFile); err != nil {
			return nil, nil
		}
		file = defaultConfigFile
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usageError(fmt.Errorf("read configuration: %w", err))
	}
	cfg, err := config.Parse(file, data)
	if err != nil {
		return nil, configProblems(g, file, err)
	}
	return cfg, nil
}

// kitRepo is an open repository with what opened it.
type kitRepo struct {
	r        *repo.Repository
	password string
	s3       *s3.Config // the credential in use; nil for a directory
	host     string
}

// openForKit opens the repository from the global options (--repo, --kit,
// the environment) when they name one, else from the agent's configuration
// cfg. When both are given they must name the same repository.
func openForKit(ctx context.Context, g *globalOptions, cfg *config.Config) (*kitRepo, error) {
	sr := &kitRepo{}
	sr.host, _ = os.Hostname()
	if cfg != nil && cfg.Host != "" {
		sr.host = cfg.Host
	}
	var err error
	if cfg == nil || g.Repo != "" || g.Kit != "" || g.env.getenv("ESCROW_REPOSITORY") != "" {
		if sr.r, sr.password, err = g.openRepoPassword(ctx); err != nil {
			return nil, err
		}
		if loc := sr.r.Backend().Location(); strings.HasPrefix(loc, "s3:") {
			c, err := g.s3Config(loc)
			if err != nil {
				closeRepo(sr.r)
				return nil, err
			}
			sr.s3 = &c
		}
		if cfg != nil && configLocation(cfg) != sr.r.Backend().Location() {
			defer closeRepo(sr.r)
			return nil, usageError(fmt.Errorf("the repository given (%s) is not the one the agent in %s backs up to (%s)", sr.r.Backend().Location(), cfg.File, configLocation(cfg)))
		}
		return sr, nil
	}
	st, c, err := configStore(g, cfg)
	if err != nil {
		return nil, err
	}
	sr.s3 = c
	be, err := openStore(ctx, st, false, g.retryOptions())
	if err != nil {
		return nil, err
	}
	if sr.password, err = cfg.Password(); err != nil {
		be.Close()
		return nil, usageError(err)
	}
	if sr.r, err = repo.Open(ctx, be, sr.password, g.repoOptions()); err != nil {
		be.Close()
		return nil, err
	}
	return sr, nil
}

// configStore is how to reach the repository of the agent's configuration,
// with the S3 credential it names (nil for a directory).
func configStore(g *globalOptions, cfg *config.Config) (store, *s3.Config, error) {
	st := store{addr: cfg.Repository}
	if !strings.HasPrefix(cfg.Repository, "s3:") {
		return st, nil, nil
	}
	c, err := cfg.S3Config(g.env.getenv)
	if err != nil {
		return st, nil, usageError(err)
	}
	st.s3 = func() (s3.Config, error) { return c, nil }
	pool, err := cfg.RootCAs()
	if err != nil {
		return st, nil, usageError(err)
	}
	if pool != nil {
		st.s3opts = append(st.s3opts, s3.WithRootCAs(pool))
	}
	return st, &c, nil
}

// configLocation is the configured repository's address as its backend
// reports it.
func configLocation(cfg *config.Config) string {
	if c, err := s3.ParseURL(cfg.Repository); err == nil {
		return c.Location()
	}
	if abs, err := filepath.Abs(strings.TrimPrefix(cfg.Repository, "local:")); err == nil {
		return abs
	}
	return cfg.Repository
}

// kitProblems is what escrow status says about the recovery kit of the
// repository the agent reports: nothing once the owner has confirmed it.
func kitProblems(stateDir, repository string) []string {
	c, ok, err := kit.ReadConfirmation(stateDir)
	switch {
	case err != nil:
		return []string{err.Error()}
	case !ok:
		return []string{kit.Warning}
	case repository != "" && c.Repository != "" && c.Repository != repository:
		return []string{fmt.Sprintf("recovery kit confirmed for %s, but the agent backs up to %s: run escrow kit, store it off this server, then escrow kit confirm", c.Repository, repository)}
	}
	return nil
}

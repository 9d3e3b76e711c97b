package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/escrow-backup/escrow/kit"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

// globalOptions are the flags every command takes.
type globalOptions struct {
	Repo         string
	PasswordFile string
	JSON         bool
	Verbose      int
	Quiet        bool
	// RetryFor bounds how long an unreachable store is retried.
	RetryFor time.Duration
	// PackSizeMiB is the target size of pack files.
	PackSizeMiB int
	// Kit is a recovery kit file: the repository address, password and S3
	// credential, where flags and the environment give none.
	Kit string
	// AsOf reads the repository as it was at this time (asof.go).
	AsOf string

	env env
	// kit is Kit's content, read once by recoveryKit.
	kit *kit.Kit
	// kdf lowers scrypt's cost; only tests set it.
	kdf repo.KDFParams
}

func (o *globalOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVarP(&o.Repo, "repo", "r", "", "repository address: a directory or s3:[http[s]://]HOST[:PORT]/BUCKET[/PREFIX] (default $ESCROW_REPOSITORY)")
	f.StringVar(&o.PasswordFile, "password-file", "", "read the repository password from this file (default $ESCROW_PASSWORD_FILE)")
	f.StringVar(&o.Kit, "kit", "", "take the repository address, password and S3 credential from this recovery kit (flags and the environment still win)")
	f.BoolVar(&o.JSON, "json", false, "print machine-readable JSON")
	f.CountVarP(&o.Verbose, "verbose", "v", "log more (repeat for debug)")
	f.BoolVarP(&o.Quiet, "quiet", "q", false, "print only errors")
	f.DurationVar(&o.RetryFor, "retry-for", remote.DefaultRetryBudget, "keep retrying an unreachable store this long before giving up")
	f.StringVar(&o.AsOf, "as-of", "", `read the repository as it was at this time: RFC 3339, a date, or "2 hours ago" (S3 with versioning; read commands only)`)
	f.IntVar(&o.PackSizeMiB, "pack-size", repo.DefaultPackSize>>20, "target size of pack files in MiB (smaller: less memory, more requests)")
}

func (o *globalOptions) logger() *slog.Logger {
	level := slog.LevelWarn
	switch {
	case o.Quiet:
		level = slog.LevelError
	case o.Verbose == 1:
		level = slog.LevelInfo
	case o.Verbose > 1:
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(o.env.stderr, &slog.HandlerOptions{Level: level}))
}

func (o *globalOptions) printf(format string, args ...any) {
	if !o.Quiet {
		fmt.Fprintf(o.env.stdout, format, args...)
	}
}

func (o *globalOptions) repoAddress() (string, error) {
	addr := o.Repo
	if addr == "" {
		addr = o.env.getenv("ESCROW_REPOSITORY")
	}
	if addr == "" {
		k, err := o.recoveryKit()
		if err != nil {
			return "", err
		}
		if k != nil {
			addr = k.Repository
		}
	}
	if addr == "" {
		return "", usageError(errors.New("no repository given: use --repo, --kit or set ESCROW_REPOSITORY (a directory, or s3:https://HOST/BUCKET/PREFIX)"))
	}
	return addr, nil
}

// openBackend connects to the store named by --repo or $ESCROW_REPOSITORY,
// with S3 credentials from the environment; create makes the layout for a
// new repository. The backend is wrapped with retries.
func (o *globalOptions) openBackend(ctx context.Context, create bool) (remote.Backend, error) {
	addr, err := o.repoAddress()
	if err != nil {
		return nil, err
	}
	at, err := o.asOfTime()
	if err != nil {
		return nil, err
	}
	if create {
		if err := o.refuseAsOf("create a repository"); err != nil {
			return nil, err
		}
	}
	st := store{addr: addr, s3: func() (s3.Config, error) { return o.s3Config(addr) }, asOf: at}
	if off, err := o.testClockOffset(); err != nil {
		return nil, err
	} else if off != 0 {
		st.s3opts = append(st.s3opts, s3.WithClockOffset(off))
	}
	return openStore(ctx, st, create, o.retryOptions())
}

// testClockOffset reads ESCROW_TEST_CLOCK_OFFSET, a duration by which S3
// requests are signed off the real time. It exists for the tests of clock
// skew: Go binaries ignore libfaketime, and the store must see a wrong
// clock for real.
func (o *globalOptions) testClockOffset() (time.Duration, error) {
	v := o.env.getenv("ESCROW_TEST_CLOCK_OFFSET")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, usageError(fmt.Errorf("ESCROW_TEST_CLOCK_OFFSET: %w", err))
	}
	return d, nil
}

// s3Config returns the settings for the s3: address addr: credentials and
// region from the AWS_* variables, else from the recovery kit. The
// environment's credential wins as a whole (a key ID is never paired with
// another credential's secret), and the kit's is only sent to the store it
// was made for.
func (o *globalOptions) s3Config(addr string) (s3.Config, error) {
	cfg, err := s3.ParseURL(addr)
	if err != nil {
		return cfg, err
	}
	k, err := o.recoveryKit()
	if err != nil {
		return cfg, err
	}
	if k != nil && k.IsS3() && o.env.getenv("AWS_ACCESS_KEY_ID") == "" {
		if kc, err := s3.ParseURL(k.Repository); err == nil && kc.Endpoint == cfg.Endpoint && kc.Bucket == cfg.Bucket {
			if !k.HasCredentials() && k.AccessKeyID != "" {
				return cfg, usageError(fmt.Errorf("the recovery kit names access key %s but does not hold its secret: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to a credential that can read bucket %s", k.AccessKeyID, cfg.Bucket))
			}
			cfg.KeyID, cfg.Secret, cfg.SessionToken = k.AccessKeyID, k.SecretAccessKey, k.SessionToken
		}
	}
	cfg.ApplyEnv(o.env.getenv)
	if cfg.Region == "" && k != nil {
		cfg.Region = k.Region
	}
	return cfg, nil
}

// recoveryKit reads --kit, once; it returns nil without --kit.
func (o *globalOptions) recoveryKit() (*kit.Kit, error) {
	if o.Kit == "" || o.kit != nil {
		return o.kit, nil
	}
	f, err := os.Open(o.Kit)
	if err != nil {
		return nil, usageError(fmt.Errorf("recovery kit: %w", err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, kit.MaxSize+1))
	if err != nil {
		return nil, usageError(fmt.Errorf("recovery kit: %w", err))
	}
	k, err := kit.Parse(data)
	if err != nil {
		return nil, usageError(fmt.Errorf("recovery kit %s: %w", o.Kit, err))
	}
	log := o.logger()
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the recovery kit is readable by other users of this machine; chmod 600 it", "file", o.Kit)
	}
	for _, name := range k.Ignored {
		log.Info("ignoring a line this escrow does not know in the recovery kit", "file", o.Kit, "line", name)
	}
	o.kit = k
	return k, nil
}

// store says where a repository is and how to reach it.
type store struct {
	addr string
	// s3 returns the settings for an s3: address, credentials included.
	s3      func() (s3.Config, error)
	s3opts  []s3.Option
	limiter *remote.Limiter // uploads; nil: unlimited
	// asOf, if set, opens the read-only view of the store at that time.
	asOf time.Time
}

func openStore(ctx context.Context, st store, create bool, ro remote.RetryOptions) (remote.Backend, error) {
	addr := st.addr
	var be remote.Backend
	var err error
	switch {
	case strings.HasPrefix(addr, "s3:"):
		cfg, err := st.s3()
		if err != nil {
			return nil, usageError(err)
		}
		if cfg.KeyID == "" || cfg.Secret == "" {
			return nil, usageError(fmt.Errorf("no S3 credentials for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", cfg.Location()))
		}
		opts := append(st.s3opts, s3.WithUploadLimit(st.limiter))
		// A store that is briefly unreachable at start is waited for, as
		// it would be in the middle of a backup.
		err = remote.Retry(ctx, ro, cfg.Location(), "connect", func() error {
			var err error
			if create {
				be, err = s3.Create(ctx, cfg, opts...)
			} else {
				be, err = s3.Open(ctx, cfg, opts...)
			}
			return err
		})
		if err != nil && !remote.IsPermanent(err) {
			return nil, fmt.Errorf("cannot reach the store at %s (check the address, the network, and that the store is running): %w", cfg.Location(), err)
		}
		if err != nil {
			return nil, err
		}
	case strings.Contains(addr, ":") && !strings.HasPrefix(addr, "local:") && !strings.HasPrefix(addr, "/") && !strings.HasPrefix(addr, "."):
		scheme, _, _ := strings.Cut(addr, ":")
		return nil, usageError(fmt.Errorf("repository address %q: unknown scheme %q (use a directory path or s3:https://HOST/BUCKET/PREFIX)", addr, scheme))
	default:
		dir := strings.TrimPrefix(addr, "local:")
		if create {
			be, err = local.Create(ctx, dir)
		} else {
			be, err = local.Open(dir)
			if remote.IsNotFound(err) {
				return nil, withCode(exitNoRepository, err)
			}
		}
		if err != nil {
			return nil, err
		}
		be = remote.Limit(be, st.limiter)
	}
	view, err := asOfView(ctx, be, st.asOf, ro)
	if err != nil {
		be.Close()
		return nil, err
	}
	return remote.WithRetry(view, ro), nil
}

func (o *globalOptions) retryOptions() remote.RetryOptions {
	return remote.RetryOptions{MaxElapsed: o.RetryFor, Logger: o.logger()}
}

// openRepo opens the repository. Commands load the index themselves, after
// listing snapshots (read ordering).
func (o *globalOptions) openRepo(ctx context.Context) (*repo.Repository, error) {
	r, _, err := o.openRepoPassword(ctx)
	return r, err
}

// openRepoPassword is openRepo that also returns the password it opened
// the repository with.
func (o *globalOptions) openRepoPassword(ctx context.Context) (*repo.Repository, string, error) {
	be, err := o.openBackend(ctx, false)
	if err != nil {
		return nil, "", err
	}
	password, err := o.password(false)
	if err != nil {
		be.Close()
		return nil, "", err
	}
	r, err := repo.Open(ctx, be, password, o.repoOptions())
	if err != nil {
		be.Close()
		if remote.IsNotFound(err) {
			return nil, "", withCode(exitNoRepository, err)
		}
		return nil, "", err
	}
	// A kit names its repository: one that opens with the kit's password
	// but has another ID is not the escrow the kit was made for.
	if k, _ := o.recoveryKit(); k != nil && r.Config().ID != k.RepositoryID {
		closeRepo(r)
		return nil, "", fmt.Errorf("the repository at %s has ID %s, but the recovery kit %s is for repository %s: this is another repository (check --repo and $ESCROW_REPOSITORY, or use this repository's own kit)", be.Location(), shortID(r.Config().ID), o.Kit, shortID(k.RepositoryID))
	}
	// Unlocking the key ran scrypt, whose 32 MiB (at the default cost) are
	// garbage now. Collecting them at once lets the heap reuse that memory
	// for the command's work; otherwise the collector would let the heap
	// grow to twice that before its first cycle.
	debug.FreeOSMemory()
	return r, password, nil
}

func shortID(id string) string {
	if len(id) > 10 {
		return id[:10]
	}
	return id
}

// loadIndex loads the index. Damaged index files are reported and skipped:
// a backup then only deduplicates less, and a restore names the files it
// cannot restore. Storage errors still stop the command.
func (o *globalOptions) loadIndex(ctx context.Context, r *repo.Repository) error {
	return loadIndexLogged(ctx, r, o.logger())
}

func loadIndexLogged(ctx context.Context, r *repo.Repository, log *slog.Logger) error {
	err := r.LoadIndex(ctx)
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		if !errors.Is(e, repo.ErrCorrupt) && !errors.Is(e, repo.ErrUnauthenticated) {
			return fmt.Errorf("load index: %w", err)
		}
	}
	for _, e := range errs {
		log.Warn("skipping a damaged index file; run `escrow check`", "err", e)
	}
	return nil
}

func (o *globalOptions) repoOptions() repo.Options {
	return repo.Options{Logger: o.logger(), KDF: o.kdf, PackSize: o.PackSizeMiB << 20}
}

func closeRepo(r *repo.Repository) {
	r.Close()
	_ = r.Backend().Close()
}

// password reads the repository password from, in order: --password-file,
// $ESCROW_PASSWORD_FILE, $ESCROW_PASSWORD, the recovery kit (--kit), or a
// prompt without echo on the terminal. It is never taken from the command line, where other users of
// the machine could read it.
func (o *globalOptions) password(confirm bool) (string, error) {
	file := o.PasswordFile
	if file == "" {
		file = o.env.getenv("ESCROW_PASSWORD_FILE")
	}
	if file != "" {
		return readPasswordFile(file)
	}
	if p := o.env.getenv("ESCROW_PASSWORD"); p != "" {
		return p, nil
	}
	if k, err := o.recoveryKit(); err != nil || k != nil {
		if err != nil {
			return "", err
		}
		return k.Password, nil
	}
	f, ok := o.env.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", usageError(errors.New("no password: set ESCROW_PASSWORD_FILE (or --password-file) to a file holding the repository password"))
	}
	p, err := prompt(f, o.env.stderr, "enter repository password: ")
	if err != nil {
		return "", err
	}
	if confirm {
		again, err := prompt(f, o.env.stderr, "enter the password again: ")
		if err != nil {
			return "", err
		}
		if again != p {
			return "", usageError(errors.New("the passwords do not match"))
		}
	}
	if p == "" {
		return "", usageError(errors.New("empty password"))
	}
	return p, nil
}

func prompt(in *os.File, out io.Writer, msg string) (string, error) {
	fmt.Fprint(out, msg)
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(out)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return string(b), nil
}

// readPasswordFile reads a password file the one way every part of escrow
// does (repo.ReadPasswordFile); its errors are the user's to fix.
func readPasswordFile(name string) (string, error) {
	p, err := repo.ReadPasswordFile(name)
	if err != nil {
		return "", usageError(err)
	}
	return p, nil
}

// snapshotFilterOptions select snapshots for "latest" and listings.
type snapshotFilterOptions struct {
	Hosts, Tags, Paths []string
}

func (f *snapshotFilterOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringArrayVarP(&f.Hosts, "host", "H", nil, "only snapshots from this host (repeatable)")
	fs.StringArrayVar(&f.Tags, "tag", nil, "only snapshots with this tag (repeatable)")
	fs.StringArrayVar(&f.Paths, "path", nil, "only snapshots of exactly these paths (repeatable)")
}

func (f *snapshotFilterOptions) filter() repo.SnapshotFilter {
	return repo.SnapshotFilter{Hosts: f.Hosts, Tags: f.Tags, Paths: f.Paths}
}

// snapshotForReading resolves "latest" or an ID prefix and then loads the
// index: snapshots are listed before the index (read ordering), so a
// snapshot being written meanwhile is never seen without its index.
func (o *globalOptions) snapshotForReading(ctx context.Context, r *repo.Repository, ref string, f repo.SnapshotFilter) (*repo.Snapshot, error) {
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	sn, err := repo.FindSnapshot(snaps, ref, f)
	if err != nil {
		return nil, err
	}
	if err := o.loadIndex(ctx, r); err != nil {
		return nil, err
	}
	return sn, nil
}

// withRepo opens the repository around a command and closes it after.
func withRepo(o *globalOptions, fn func(cmd *cobra.Command, r *repo.Repository, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		r, err := o.openRepo(cmd.Context())
		if err != nil {
			return err
		}
		defer closeRepo(r)
		return fn(cmd, r, args)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/agent/metrics"
	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/installer"
	"github.com/escrow-backup/escrow/kit"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/s3"
	"github.com/escrow-backup/escrow/repo"
)

func newAgentCommand(g *globalOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Protect the configured sources continuously (the system service runs this)",
		Long: `Run the agent in the foreground: watch the configured sources, save an
incremental snapshot a few seconds after each burst of changes, and rescan
everything at start and on a schedule to prove that no change was missed.

Signals: SIGHUP reloads the configuration (a file with problems is refused
and the running configuration kept); SIGUSR1 starts a full rescan now;
SIGINT and SIGTERM stop within 30 seconds, leaving the repository valid.`,
		Example: "  escrow agent --config /etc/escrow/escrow.yaml",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			closeLog, err := serviceLog(g)
			if err != nil {
				return err
			}
			defer closeLog()
			// The service wrapper: the same Start and Stop that a service
			// manager calls, in the foreground until SIGTERM or SIGINT.
			prog := installer.NewProgram(func(ctx context.Context) error { return runAgent(ctx, g, file) })
			return installer.Run(cmd.Context(), prog, installer.Options{ConfigFile: file})
		},
	}
	cmd.Flags().StringVar(&file, "config", defaultConfigFile, "the configuration file")
	return cmd
}

func runAgent(ctx context.Context, g *globalOptions, file string) error {
	cfg, err := config.Load(file)
	if err != nil {
		return configProblems(g, file, err)
	}
	sig := make(chan os.Signal, 4)
	notifyAgentSignals(sig)
	defer signal.Stop(sig)

	for {
		log := agentLogger(g.env.stderr, cfg)
		runCtx, stop := context.WithCancel(ctx)
		rescan := make(chan struct{}, 1)
		reloaded := make(chan *config.Config, 1)
		go func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case s := <-sig:
					if s == rescanSignal {
						log.Info("SIGUSR1: full rescan requested")
						select {
						case rescan <- struct{}{}:
						default:
						}
						continue
					}
					next, err := config.Load(file)
					if err != nil {
						log.Error("SIGHUP: the configuration has problems; keeping the running one", "file", file, "err", err)
						continue
					}
					log.Info("SIGHUP: reloading the configuration", "file", file)
					reloaded <- next
					stop()
					return
				}
			}
		}()
		err := runAgentOnce(runCtx, g, cfg, log, rescan)
		stop()
		if ctx.Err() != nil {
			return nil
		}
		select {
		case next := <-reloaded:
			cfg = next
			continue
		default:
		}
		return err
	}
}

// runAgentOnce opens the repository named by cfg and runs the agent until
// ctx ends.
func runAgentOnce(ctx context.Context, g *globalOptions, cfg *config.Config, log *slog.Logger, rescan <-chan struct{}) error {
	// Dumps killed with an earlier agent leave their private folders (an
	// SQLite copy is as large as the database): remove them now rather
	// than at the first dump, which may be a day away.
	database.RemoveStale(dbTempDir(cfg), log)
	var m *metrics.Metrics
	var wrap []func(remote.Backend) remote.Backend
	if cfg.MetricsListen != "" {
		m = metrics.New()
		wrap = append(wrap, m.Backend)
	}
	r, err := openAgentRepo(ctx, g, cfg, log, wrap...)
	if err != nil {
		return err
	}
	defer closeRepo(r)

	var sources []agent.Source
	for _, s := range cfg.Sources {
		excludes := append([]string(nil), s.Exclude...)
		for _, f := range s.ExcludeFile {
			pats, err := backup.ReadExcludeFile(f)
			if err != nil {
				return usageError(err)
			}
			excludes = append(excludes, pats...)
		}
		sources = append(sources, agent.Source{
			Path: s.Path, Excludes: excludes, Watch: s.Watch, OneFileSystem: s.OneFileSystem, Tags: s.Tags,
			FreshWithin: s.FreshWithin,
		})
	}
	notifier, stopNotifier, err := startNotifier(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopNotifier()
	var alerts agent.Alerter
	if notifier != nil {
		alerts = notifier
	}
	a, err := agent.New(r, agent.Options{
		Sources: sources, Jobs: dbJobs(r, cfg, log), Host: cfg.Host,
		QuietPeriod: cfg.Schedule.QuietPeriod, MaxDelay: cfg.Schedule.MaxDelay, RescanEvery: cfg.Schedule.RescanEvery,
		Parallelism: cfg.Limits.Parallelism, CPUPriority: cfg.Limits.CPUPriority, IOPriority: cfg.Limits.IOPriority,
		StateDir: cfg.StateDir, Repository: r.Backend().Location(),
		ProgramVersion: "escrow " + version, Logger: log,
		LoadIndex:      func(ctx context.Context) error { return loadIndexLogged(ctx, r, log) },
		HeartbeatEvery: cfg.HeartbeatEvery, Alerts: alerts, Observer: observer(m),
		KitConfirmed: func() bool {
			_, ok, _ := kit.Confirmed(cfg.StateDir, r.Config().ID)
			return ok
		},
	})
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-rescan:
				a.Rescan()
			}
		}
	}()
	if m != nil {
		m.Watch(a.Status)
		mctx, stopMetrics := context.WithCancel(ctx)
		addr, wait, err := m.Serve(mctx, cfg.MetricsAddress(), log)
		if err != nil {
			stopMetrics()
			return usageError(err)
		}
		defer func() { stopMetrics(); wait() }()
		log.Info("metrics endpoint listening", "url", "http://"+addr+"/metrics")
	}
	log.Info("agent started", "config", cfg.File, "repository", r.Backend().Location(), "sources", len(sources))
	// Until the owner confirms the recovery kit is stored off this server,
	// the escrow would die with the server: say so at start and daily.
	remindCtx, stopRemind := context.WithCancel(ctx)
	reminded := make(chan struct{})
	go func() {
		defer close(reminded)
		kit.Remind(remindCtx, log, cfg.StateDir, r.Config().ID, 24*time.Hour)
	}()
	defer func() { stopRemind(); <-reminded }()
	return a.Run(ctx)
}

// openAgentRepo opens the repository with the configuration's credentials,
// upload limit and CA bundle, and caches index and snapshot files in the
// state directory. wrap, when given, wraps the store below the cache (the
// agent's metrics count its requests there).
func openAgentRepo(ctx context.Context, g *globalOptions, cfg *config.Config, log *slog.Logger, wrap ...func(remote.Backend) remote.Backend) (*repo.Repository, error) {
	if err := g.refuseAsOf("back up"); err != nil {
		return nil, err
	}
	st := store{
		addr:    cfg.Repository,
		s3:      func() (s3.Config, error) { return cfg.S3Config(g.env.getenv) },
		limiter: remote.NewLimiter(cfg.Limits.UploadBandwidth),
	}
	pool, err := cfg.RootCAs()
	if err != nil {
		return nil, usageError(err)
	}
	if pool != nil {
		st.s3opts = append(st.s3opts, s3.WithRootCAs(pool))
	}
	ro := remote.RetryOptions{MaxElapsed: g.RetryFor, Logger: log}
	be, err := openStore(ctx, st, false, ro)
	if err != nil {
		return nil, err
	}
	for _, w := range wrap {
		be = w(be)
	}
	cache, err := remote.NewCache(be, filepath.Join(cfg.StateDir, "cache"))
	if err != nil {
		be.Close()
		return nil, fmt.Errorf("state directory %s: %w", cfg.StateDir, err)
	}
	if err := cache.Prune(ctx); err != nil {
		log.Warn("cannot tidy the local cache", "err", err)
	}
	password, err := cfg.Password()
	if err != nil {
		be.Close()
		return nil, usageError(err)
	}
	r, err := repo.Open(ctx, cache, password, repo.Options{Logger: log, KDF: g.kdf, PackSize: g.PackSizeMiB << 20})
	if err != nil {
		be.Close()
		if remote.IsNotFound(err) {
			return nil, withCode(exitNoRepository, fmt.Errorf("%w (create it first: escrow init --repo %s)", err, cfg.Repository))
		}
		return nil, err
	}
	debug.FreeOSMemory() // scrypt's memory, as in openRepo
	return r, nil
}

func agentLogger(w io.Writer, cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.Log.Level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// observer is m as an agent.Observer, or nil (not a typed nil) without
// metrics.
func observer(m *metrics.Metrics) agent.Observer {
	if m == nil {
		return nil
	}
	return m
}

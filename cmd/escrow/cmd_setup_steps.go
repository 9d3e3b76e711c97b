package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/backup"
	"github.com/escrow-backup/escrow/installer"
	"github.com/escrow-backup/escrow/kit"
	"github.com/escrow-backup/escrow/repo"
	"github.com/escrow-backup/escrow/setup"
)

// setupFiles is what writeSetupFiles wrote.
type setupFiles struct {
	cfg      *config.Config
	password string
	// newPassword is set when the password file was created by this run.
	newPassword bool
	paths       setup.Paths
}

// writeSetupFiles checks the configuration the answers make, then writes the
// secrets and the configuration (all 0600, in a 0700 folder). Nothing is
// written when the answers have a problem.
func writeSetupFiles(g *globalOptions, pre *setup.Preseed, a *setup.Answers, paths setup.Paths, old []byte) (*setupFiles, error) {
	text, err := setup.ConfigText(old, a, paths)
	if err != nil {
		return nil, usageError(err)
	}
	if _, err := config.Parse(paths.ConfigFile, text); err != nil {
		return nil, usageError(preseedError(pre, err))
	}
	if err := checkSetupPaths(a); err != nil {
		return nil, usageError(preseedError(pre, err))
	}
	if err := paths.MakeDir(); err != nil {
		return nil, err
	}
	password, created, err := setup.EnsurePassword(paths.Password(), a.Password)
	if errors.Is(err, setup.ErrPasswordDiffers) {
		return nil, usageError(err)
	}
	if err != nil {
		return nil, err
	}
	if created {
		g.printf("Generated the repository password on this host: %s (readable by root only).\n", paths.Password())
	}
	if strings.HasPrefix(a.Repository, "s3:") && a.S3.SecretAccessKey != "" {
		if err := setup.WriteSecret(paths.S3Secret(), a.S3.SecretAccessKey); err != nil {
			return nil, err
		}
	}
	for _, db := range a.Databases {
		if db.Password != "" {
			if err := setup.WriteSecret(paths.DBPassword(db.Name), db.Password); err != nil {
				return nil, err
			}
		}
	}
	if err := kit.WriteFile(paths.ConfigFile, text, true); err != nil {
		return nil, fmt.Errorf("write the configuration: %w", err)
	}
	cfg, err := config.Load(paths.ConfigFile)
	if err != nil {
		return nil, configProblems(g, paths.ConfigFile, err)
	}
	g.printf("Wrote the configuration %s.\n", paths.ConfigFile)
	return &setupFiles{cfg: cfg, password: password, newPassword: created, paths: paths}, nil
}

// checkSetupPaths checks that the directories and SQLite files to protect
// exist, before anything is written.
func checkSetupPaths(a *setup.Answers) error {
	var errs []error
	for i, s := range a.Sources {
		if fi, err := os.Stat(s.Path); err != nil || !fi.IsDir() {
			errs = append(errs, &config.Error{Field: fmt.Sprintf("sources[%d].path", i), Msg: s.Path + " is not a directory on this server; give a directory that exists"})
		}
	}
	for i, db := range a.Databases {
		if db.Path == "" {
			continue
		}
		if _, err := os.Stat(db.Path); err != nil {
			errs = append(errs, &config.Error{Field: fmt.Sprintf("databases[%d].path", i), Msg: db.Path + " does not exist on this server"})
		}
	}
	if f := a.Kit.File; f != "" {
		if !filepath.IsAbs(f) {
			errs = append(errs, &config.Error{Field: "kit.file", Msg: f + " is not an absolute path"})
		} else if fi, err := os.Stat(filepath.Dir(f)); err != nil || !fi.IsDir() {
			errs = append(errs, &config.Error{Field: "kit.file", Msg: filepath.Dir(f) + " does not exist; create it, or write the kit elsewhere"})
		}
	}
	return errors.Join(errs...)
}

// openOrInitRepo opens the repository the configuration names, or creates
// it when the address holds none. An existing repository is never created
// again: one the password does not open is an error.
func openOrInitRepo(ctx context.Context, g *globalOptions, f *setupFiles) (*kitRepo, error) {
	cfg := f.cfg
	st, c, err := configStore(g, cfg)
	if err != nil {
		return nil, err
	}
	be, exists, err := connectStore(ctx, g, st)
	if err != nil {
		return nil, err
	}
	sr := &kitRepo{password: f.password, s3: c, host: cfg.Host}
	loc := be.Location()
	if !exists {
		if sr.r, err = repo.Init(ctx, be, f.password, g.repoOptions()); err != nil {
			be.Close()
			return nil, withCode(exitSetupRepo, fmt.Errorf("create the repository at %s: %w", loc, err))
		}
		g.printf("Created the repository %s at %s.\n", shortID(sr.r.Config().ID), loc)
		return sr, nil
	}
	if sr.r, err = repo.Open(ctx, be, f.password, g.repoOptions()); err != nil {
		be.Close()
		if errors.Is(err, repo.ErrWrongPassword) {
			file := f.paths.Password()
			if f.newPassword {
				// The generated password opens nothing: without it a run
				// with the right password can proceed.
				os.Remove(file)
				file = "the preseed's password: (or " + file + ")"
			}
			return nil, withCode(exitSetupRepo, fmt.Errorf("a repository already exists at %s and the password does not open it; it is never created again: give its password in %s and run setup again, or use another bucket or prefix", loc, file))
		}
		return nil, withCode(exitSetupRepo, fmt.Errorf("open the repository at %s: %w", loc, err))
	}
	g.printf("Opened the existing repository %s at %s (it is not created again).\n", shortID(sr.r.Config().ID), loc)
	return sr, nil
}

// deliverSetupKit writes the recovery kit where the answers say, shows it
// on a terminal t (nil: unattended), and records it as stored off the server
// when the owner says so, or when the preseed's command took it.
func deliverSetupKit(ctx context.Context, g *globalOptions, t setup.Terminal, sr *kitRepo, a *setup.Answers, cfg *config.Config) error {
	k := newKit(sr, setup.On(a.Kit.IncludeCredentials, true))
	text, err := kitText(k)
	if err != nil {
		return err
	}
	if err := setup.DeliverKit(ctx, text, a.Kit, g.env.stderr); err != nil {
		return err
	}
	if a.Kit.File != "" {
		g.printf("Wrote the recovery kit to %s (readable by root only).\n", a.Kit.File)
	}
	if len(a.Kit.Command) > 0 {
		g.printf("Handed the recovery kit to %s on its standard input.\n", a.Kit.Command[0])
	}
	confirmed := setup.On(a.Kit.Confirm, len(a.Kit.Command) > 0)
	if t != nil {
		t.Say("\nYour recovery kit:\n\n%s\n", text)
		t.Say("Store it OFF this server now: print it, or copy it into a password manager.\nWithout it nobody can restore the backups if this server is gone.\n")
		if confirmed, err = setup.AskYesNo(t, "Have you stored the recovery kit off this server?", false); err != nil {
			return err
		}
	}
	if !confirmed {
		g.printf("Store the kit off this server, then run: escrow kit confirm --config %s\n", cfg.File)
		return nil
	}
	c := kit.Confirmation{Time: time.Now().UTC().Truncate(time.Second), RepositoryID: sr.r.Config().ID,
		Repository: sr.r.Backend().Location(), KeyID: sr.r.KeyID().String()}
	if err := kit.Confirm(cfg.StateDir, c); err != nil {
		return err
	}
	g.printf("Recorded the recovery kit as stored off this server.\n")
	return nil
}

// startService starts the installed service, or restarts it so that it
// runs with the configuration just written.
func startService(g *globalOptions, cfg *config.Config) error {
	m, err := installer.NewManager(installer.Options{ConfigFile: cfg.File})
	if err != nil {
		return err
	}
	if m.Status().State == installer.Running {
		err = m.Restart()
	} else {
		err = m.Start()
	}
	if err != nil {
		return fmt.Errorf("start the service: %w", err)
	}
	return confirmStarted(g, m, cfg)
}

// followServiceBackup shows the service's first backup, until every source
// and database has been saved (or found unchanged) by an agent started
// after since, then the agent's status.
func followServiceBackup(ctx context.Context, g *globalOptions, cfg *config.Config, since time.Time, wait time.Duration) error {
	g.printf("Following the agent's first backup (escrow status shows it at any time):\n")
	deadline := time.Now().Add(wait)
	last := ""
	shown := map[string]bool{}
	for time.Now().Before(deadline) {
		st, running, err := agent.ReadStatus(cfg.StateDir)
		if err == nil && !st.Started.Before(since) {
			done, total, problems := firstBackupProgress(st, since)
			line := fmt.Sprintf("  %d of %d sources and databases saved", done, total)
			if line != last {
				g.printf("%s\n", line)
				last = line
			}
			for _, p := range problems {
				if !shown[p] {
					fmt.Fprintf(g.env.stderr, "  %s\n", p)
					shown[p] = true
				}
			}
			if done == total {
				printStatus(g, st, running, time.Now())
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	g.printf("The first backup is still running; escrow status shows how far it is.\n")
	return nil
}

// firstBackupProgress counts the sources and databases an agent saved (or
// found unchanged) since a time, and lists its errors since then.
func firstBackupProgress(st *agent.Status, since time.Time) (done, total int, problems []string) {
	for _, s := range st.Sources {
		if s.Verified.After(since) || s.LastSnapshot != nil && s.LastSnapshot.Time.After(since) {
			done++
		}
		if s.LastError != "" && s.LastErrorTime.After(since) {
			problems = append(problems, s.Path+": "+s.LastError)
		}
	}
	for _, j := range st.Jobs {
		if j.LastSuccess.After(since) {
			done++
		}
		if j.LastError != "" && j.LastErrorTime.After(since) {
			problems = append(problems, "database "+j.Name+": "+j.LastError)
		}
	}
	return done, len(st.Sources) + len(st.Jobs), problems
}

// firstBackup saves a snapshot of every source and dumps every database,
// in this process, when no service runs the agent.
func firstBackup(ctx context.Context, g *globalOptions, r *repo.Repository, cfg *config.Config) error {
	g.printf("First backup:\n")
	log := g.logger()
	if err := backupSources(ctx, g, r, cfg); err != nil {
		return fmt.Errorf("setup is done, but the first backup failed: %w", err)
	}
	var failed []string
	for i := range cfg.Databases {
		db := &cfg.Databases[i]
		results, err := dumpConfigured(ctx, r, cfg, db, log)
		if err != nil {
			return fmt.Errorf("setup is done, but the first dump of database %s failed: %w", db.Name, err)
		}
		printDumpResults(g, results)
		for _, res := range results {
			if res.Err != nil {
				failed = append(failed, db.Name)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("setup is done, but the first dump of %s failed (see above); escrow db dump --config %s retries it", strings.Join(failed, ", "), cfg.File)
	}
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	g.printf("Setup is done: the repository holds %d snapshot(s). No service runs the agent (--no-service); sudo escrow install && sudo escrow start keep it protected.\n", len(snaps))
	return nil
}

func backupSources(ctx context.Context, g *globalOptions, r *repo.Repository, cfg *config.Config) error {
	lock, err := r.Lock(ctx, false)
	if err != nil {
		return err
	}
	defer func() { _ = lock.Unlock(context.WithoutCancel(ctx)) }()
	// Snapshots are listed before the index is loaded (read ordering).
	snaps, err := r.Snapshots(ctx)
	if err != nil {
		return err
	}
	if err := g.loadIndex(ctx, r); err != nil {
		return err
	}
	for _, s := range cfg.Sources {
		excludes := append([]string(nil), s.Exclude...)
		for _, f := range s.ExcludeFile {
			pats, err := backup.ReadExcludeFile(f)
			if err != nil {
				return err
			}
			excludes = append(excludes, pats...)
		}
		var shown time.Time
		opts := backup.Options{
			Paths: []string{s.Path}, Excludes: excludes, OneFileSystem: s.OneFileSystem, Tags: s.Tags, Host: cfg.Host,
			Parent: backup.FindParent(snaps, cfg.Host, []string{s.Path}), ProgramVersion: "escrow " + version, Logger: g.logger(),
			// A second run of setup adds no snapshot of a tree it saved.
			SkipUnchanged: true,
			Progress: func(p backup.Progress) {
				if time.Since(shown) >= 2*time.Second {
					shown = time.Now()
					g.printf("  %s: %d files, %s read\n", s.Path, p.Files, formatBytes(p.BytesRead))
				}
			},
		}
		start := time.Now()
		res, err := backup.Files(ctx, r, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Path, err)
		}
		if res.Unchanged {
			g.printf("  %s: unchanged since snapshot %s\n", s.Path, res.Parent.ID.Str())
			continue
		}
		sum := res.Summary
		g.printf("  %s: snapshot %s saved, %d files, %s added, in %s\n", s.Path, res.Snapshot.ID.Str(),
			sum.FilesNew+sum.FilesChanged+sum.FilesUnmodified, formatBytes(sum.DataAdded), formatDuration(time.Since(start)))
		for _, e := range res.Errors {
			fmt.Fprintf(g.env.stderr, "could not read %s\n", e.Error())
		}
	}
	return nil
}

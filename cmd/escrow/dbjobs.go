package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/database"
	"github.com/escrow-backup/escrow/repo"
)

// dbSpec turns a configured database into a dump spec. The password file
// is read here, at each dump, so that a rotated password needs no restart.
func dbSpec(db *config.Database) (database.Spec, error) {
	t, err := database.ParseType(string(db.Type))
	if err != nil {
		return database.Spec{}, err
	}
	pw, err := db.Password()
	if err != nil {
		return database.Spec{}, fmt.Errorf("database %s: %w", db.Name, err)
	}
	return database.Spec{
		Type: t, Host: db.Host, Port: db.Port, Socket: db.Socket, User: db.User, Password: pw,
		Databases: db.Databases, All: db.All, Path: db.Path,
	}, nil
}

// dbTempDir is where the agent's dumps keep their private folders. The
// state directory is private (0700), and SQLite's consistent copy may be
// large: keep it off a small /tmp.
func dbTempDir(cfg *config.Config) string { return filepath.Join(cfg.StateDir, "tmp") }

// dumpConfigured dumps one configured database. The caller holds a shared
// lock (the agent holds one for its lifetime) and has loaded the index.
func dumpConfigured(ctx context.Context, r *repo.Repository, cfg *config.Config, db *config.Database, log *slog.Logger) ([]database.Result, error) {
	spec, err := dbSpec(db)
	if err != nil {
		return nil, err
	}
	tmp := dbTempDir(cfg)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return database.Dump(ctx, r, spec, database.Options{
		TempDir: tmp, Host: cfg.Host,
		ProgramVersion: "escrow " + version, Logger: log,
	})
}

// dbJobs makes one agent job per configured database.
func dbJobs(r *repo.Repository, cfg *config.Config, log *slog.Logger) []agent.Job {
	var jobs []agent.Job
	for i := range cfg.Databases {
		db := &cfg.Databases[i]
		jobs = append(jobs, agent.Job{
			Name: "database " + db.Name, Every: db.Every, FreshWithin: db.FreshWithin,
			Run: func(ctx context.Context) (agent.JobResult, error) {
				results, err := dumpConfigured(ctx, r, cfg, db, log)
				var res agent.JobResult
				for _, d := range results {
					if d.Snapshot != nil {
						res.Snapshots = append(res.Snapshots, d.Snapshot.ID.String())
						res.Bytes += d.Bytes
					}
				}
				return res, err
			},
		})
	}
	return jobs
}

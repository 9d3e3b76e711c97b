package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/config"
)

func newStatusCommand(g *globalOptions) *cobra.Command {
	var file, stateDir string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the agent protects, how fresh it is, and what is wrong",
		Long: `Show the agent's report: for each source, whether it is watched, its newest
snapshot, changes not yet saved, the latest full rescan and how many changes
the watcher missed, and any error. It reads the agent's state directory
(from --config, or --state-dir); the repository is not contacted.

Also shown: each source's and database's age against its target freshness
(fresh_within), the escrow verdict of the last escrow doctor, whether the
recovery kit was confirmed, and when the last heartbeat was written.

Exit status: 0 when the agent runs and every source and database is healthy
and fresh and the recovery kit is confirmed; 4 when the agent is not running,
a source or database failed or is older than its target freshness, the
heartbeat cannot be written, or the kit is unconfirmed; 2 for usage errors.
An escrow that is not tamper-proof is a warning, not an error exit: a store
without Object Lock stays that way (see docs/monitoring.md).`,
		Example: `  escrow status
  escrow status --config /etc/escrow/escrow.yaml --json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := statusDir(cmd, file, stateDir)
			if err != nil {
				return err
			}
			st, running, err := agent.ReadStatus(dir)
			if err != nil {
				if errors.Is(err, agent.ErrNoStatus) {
					return withCode(exitUnhealthy, err)
				}
				return err
			}
			now := time.Now()
			problems := statusProblems(st, running)
			problems = append(problems, freshnessProblems(st, now)...)
			kitIssues := kitProblems(dir, st.Repository)
			problems = append(problems, kitIssues...)
			verdict, warnings := escrowVerdict(dir)
			if g.JSON {
				if err := printJSON(g, map[string]any{
					"running": running, "problems": problems, "warnings": warnings, "status": st,
					"escrow": verdict, "kit_confirmed": len(kitIssues) == 0, "version": "escrow " + version,
				}); err != nil {
					return err
				}
			} else {
				printStatus(g, st, running, now)
				printEscrow(g, st, verdict, len(kitIssues) == 0, warnings, now)
			}
			if len(problems) > 0 {
				return withCode(exitUnhealthy, fmt.Errorf("%s", strings.Join(problems, "; ")))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", defaultConfigFile, "the agent's configuration file (for its state_dir)")
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "the agent's state directory (instead of reading --config)")
	return cmd
}

// statusDir finds the state directory: --state-dir, else the configuration's
// state_dir, else the default. Only the file's syntax matters here, so that
// status still works while other parts of the configuration are wrong.
func statusDir(cmd *cobra.Command, file, stateDir string) (string, error) {
	if stateDir != "" {
		return stateDir, nil
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) && !cmd.Flags().Changed("config") {
		return config.DefaultStateDir, nil
	}
	if err != nil {
		return "", usageError(fmt.Errorf("read configuration: %w", err))
	}
	cfg, err := config.Parse(file, data)
	if err == nil {
		return cfg.StateDir, nil
	}
	// A configuration with problems elsewhere still names the state
	// directory of the agent that runs with its previous version.
	var only struct {
		StateDir string `yaml:"state_dir"`
	}
	if yaml.Unmarshal(data, &only) != nil {
		return "", usageError(err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "escrow: %s has problems (see escrow config check); reading state_dir anyway\n", file)
	if only.StateDir == "" {
		return config.DefaultStateDir, nil
	}
	return only.StateDir, nil
}

// statusProblems lists what needs attention.
func statusProblems(st *agent.Status, running bool) []string {
	var out []string
	if !running {
		out = append(out, "the agent is not running")
	}
	for _, s := range st.Sources {
		if s.LastError != "" {
			out = append(out, fmt.Sprintf("%s: last backup failed: %s", s.Path, s.LastError))
		}
		if s.WatchProblem != "" && s.Watches > 0 {
			out = append(out, fmt.Sprintf("%s: %s", s.Path, s.WatchProblem))
		}
		if s.MissedTotal > 0 {
			out = append(out, fmt.Sprintf("%s: the watcher missed %d changes (found by rescans)", s.Path, s.MissedTotal))
		}
		if s.LastSnapshot != nil && len(s.LastSnapshot.Unreadable) > 0 {
			out = append(out, fmt.Sprintf("%s: %d paths could not be read", s.Path, len(s.LastSnapshot.Unreadable)))
		}
	}
	for _, j := range st.Jobs {
		if j.LastError != "" {
			out = append(out, fmt.Sprintf("%s: last run failed: %s", j.Name, j.LastError))
		}
	}
	if st.HeartbeatError != "" {
		out = append(out, "cannot write the heartbeat to the store, so a fleet view sees this host as silent: "+st.HeartbeatError)
	}
	return out
}

func printStatus(g *globalOptions, st *agent.Status, running bool, now time.Time) {
	ago := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return formatAge(now.Sub(t)) + " ago"
	}
	state := "not running"
	if running {
		state = fmt.Sprintf("running (pid %d, %s, started %s)", st.PID, st.Version, ago(st.Started))
	} else if st.Stopped {
		state = fmt.Sprintf("stopped (last report %s)", ago(st.Updated))
	} else {
		state = fmt.Sprintf("not running: it ended without stopping (last report %s)", ago(st.Updated))
	}
	g.printf("agent:       %s\n", state)
	g.printf("repository:  %s\n", st.Repository)
	g.printf("host:        %s\n", st.Host)
	for _, s := range st.Sources {
		g.printf("\n%s\n", s.Path)
		switch {
		case s.Watching:
			g.printf("  watching:  %d directories\n", s.Watches)
		default:
			g.printf("  watching:  no: %s\n", s.WatchProblem)
		}
		if sn := s.LastSnapshot; sn != nil {
			g.printf("  snapshot:  %s, %s (%s: %d new, %d changed files, %s added, %.1fs)\n",
				sn.ID[:8], ago(sn.Time), sn.Kind, sn.FilesNew, sn.FilesChanged, formatBytes(sn.BytesAdded), sn.Seconds)
			for _, u := range sn.Unreadable {
				g.printf("  unreadable: %s\n", u)
			}
		} else {
			g.printf("  snapshot:  none yet\n")
		}
		g.printf("  verified:  %s (the tree matched a snapshot)\n", ago(s.Verified))
		if s.PendingSince.IsZero() {
			g.printf("  pending:   nothing\n")
		} else {
			g.printf("  pending:   changes in %d directories, the first %s\n", s.PendingDirs, ago(s.PendingSince))
		}
		if r := s.LastRescan; r != nil {
			g.printf("  rescan:    %s (%s): %d changes found, %d missed by the watcher; %d missed since start\n",
				ago(r.Time), r.Reason, r.Changes, r.Missed, s.MissedTotal)
		}
		if !s.NextRescan.IsZero() {
			g.printf("  next rescan in %s\n", formatAge(s.NextRescan.Sub(now)))
		}
		for _, d := range s.Deferred {
			g.printf("  deferred:  %s (changing while read; its previous version is kept)\n", d)
		}
		if s.LastError != "" {
			g.printf("  ERROR:     %s (%s; %d failures in a row, retrying)\n", s.LastError, ago(s.LastErrorTime), s.Failures)
		}
		g.printf("  fresh:     %s\n", freshness(s.Verified, s.FreshWithin, st.Started, now))
	}
	for _, j := range st.Jobs {
		g.printf("\n%s (every %s)\n", j.Name, j.Every)
		g.printf("  last good: %s", ago(j.LastSuccess))
		if len(j.LastSnapshots) > 0 {
			g.printf(" (%d snapshots, %s read)", len(j.LastSnapshots), formatBytes(j.LastBytes))
		}
		g.printf("\n")
		if !j.NextRun.IsZero() {
			g.printf("  next run in %s\n", formatAge(j.NextRun.Sub(now)))
		}
		if j.LastError != "" {
			g.printf("  ERROR:     %s (%s; %d failures in a row, retrying)\n", j.LastError, ago(j.LastErrorTime), j.Failures)
		}
		g.printf("  fresh:     %s\n", freshness(j.LastSuccess, j.FreshWithin, st.Started, now))
	}
}

// formatAge prints a duration for people: 42s, 5m, 3h10m, 2d4h.
func formatAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

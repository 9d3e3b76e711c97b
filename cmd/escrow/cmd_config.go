package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/installer"
)

// defaultConfigFile is where the installed service reads the agent's
// configuration.
const defaultConfigFile = installer.ConfigFile

func newConfigCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Write or check the agent's configuration file",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("unknown command %q for escrow config: use example or check", args[0]))
			}
			return usageError(errors.New("escrow config needs a command: example or check"))
		},
	}
	cmd.AddCommand(newConfigExampleCommand(g), newConfigCheckCommand(g))
	return cmd
}

func newConfigExampleCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "example",
		Short: "Print a complete, commented configuration file to start from",
		Example: `  escrow config example > /etc/escrow/escrow.yaml
  chmod 600 /etc/escrow/escrow.yaml`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := io.WriteString(g.env.stdout, config.Example())
			return err
		},
	}
}

func newConfigCheckCommand(g *globalOptions) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a configuration file and the files it names",
		Long: `Check the configuration file as the agent will read it: its syntax, every
field, and the files and directories it names (password and secret files
readable and not readable by every user, sources readable directories,
state_dir writable). Every problem is listed with its line and the fix.
Nothing is changed and the repository is not contacted.

Exit status: 0 when the file is fine, 2 when it has problems.`,
		Example: "  escrow config check --config /etc/escrow/escrow.yaml",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return configProblems(g, file, err)
			}
			if g.JSON {
				return printJSON(g, configSummaryJSON(cfg))
			}
			g.printf("%s: OK\n", cfg.File)
			printConfigSummary(g, cfg)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "config", defaultConfigFile, "the configuration file")
	return cmd
}

// configProblems prints a configuration's problems one per line, then
// returns a one-line verdict with the usage exit code.
func configProblems(g *globalOptions, file string, err error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	if len(errs) == 1 {
		return usageError(err)
	}
	for _, e := range errs {
		fmt.Fprintln(g.env.stderr, e)
	}
	return usageError(fmt.Errorf("%s: %d problems (listed above)", file, len(errs)))
}

func printConfigSummary(g *globalOptions, c *config.Config) {
	g.printf("  repository:  %s\n", c.Repository)
	if strings.HasPrefix(c.Repository, "s3:") {
		// Credentials left to the environment are the usual reason an agent
		// that passed this check cannot connect, so say where they come from.
		key, secret := "$AWS_ACCESS_KEY_ID", "$AWS_SECRET_ACCESS_KEY"
		if c.S3.AccessKeyID != "" {
			key = c.S3.AccessKeyID
		}
		if c.S3.SecretAccessKeyFile != "" {
			secret = c.S3.SecretAccessKeyFile
		}
		g.printf("  s3:          access key %s, secret from %s\n", key, secret)
	}
	g.printf("  host:        %s\n", c.Host)
	for _, s := range c.Sources {
		how := "watched"
		if !s.Watch {
			how = "rescans only"
		}
		if len(s.Exclude) > 0 {
			how += ", excluding " + strings.Join(s.Exclude, " ")
		}
		if len(s.ExcludeFile) > 0 {
			how += ", excluding the patterns in " + strings.Join(s.ExcludeFile, " ")
		}
		if len(s.Tags) > 0 {
			how += ", tags " + strings.Join(s.Tags, ",")
		}
		g.printf("  source:      %s (%s)\n", s.Path, how)
	}
	for _, db := range c.Databases {
		what := strings.Join(db.Databases, ", ")
		switch {
		case db.Type == config.SQLite:
			what = db.Path
		case db.All:
			what = "all databases"
		}
		g.printf("  database:    %s: %s %s, every %s\n", db.Name, db.Type, what, shortDuration(db.Every))
	}
	s := c.Schedule
	g.printf("  schedule:    snapshot %s after the last change, at most %s after the first; full rescan every %s\n",
		shortDuration(s.QuietPeriod), shortDuration(s.MaxDelay), shortDuration(s.RescanEvery))
	upload := "unlimited"
	if c.Limits.UploadBandwidth > 0 {
		upload = formatBytes(uint64(c.Limits.UploadBandwidth)) + "/s"
	}
	g.printf("  limits:      upload %s, CPU priority %s, I/O priority %s, %d files at once\n",
		upload, c.Limits.CPUPriority, c.Limits.IOPriority, c.Limits.Parallelism)
	g.printf("  state_dir:   %s\n", c.StateDir)
}

func configSummaryJSON(c *config.Config) any {
	type source struct {
		Path  string   `json:"path"`
		Watch bool     `json:"watch"`
		Tags  []string `json:"tags,omitempty"`
	}
	type database struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Every string `json:"every"`
	}
	out := struct {
		File            string     `json:"file"`
		OK              bool       `json:"ok"`
		Repository      string     `json:"repository"`
		Host            string     `json:"host"`
		Sources         []source   `json:"sources"`
		Databases       []database `json:"databases"`
		QuietPeriod     string     `json:"quiet_period"`
		MaxDelay        string     `json:"max_delay"`
		RescanEvery     string     `json:"rescan_every"`
		UploadBandwidth int64      `json:"upload_bandwidth"`
		StateDir        string     `json:"state_dir"`
	}{
		File: c.File, OK: true, Repository: c.Repository, Host: c.Host,
		Sources: []source{}, Databases: []database{},
		QuietPeriod: shortDuration(c.Schedule.QuietPeriod), MaxDelay: shortDuration(c.Schedule.MaxDelay),
		RescanEvery: shortDuration(c.Schedule.RescanEvery), UploadBandwidth: c.Limits.UploadBandwidth, StateDir: c.StateDir,
	}
	for _, s := range c.Sources {
		out.Sources = append(out.Sources, source{s.Path, s.Watch, s.Tags})
	}
	for _, db := range c.Databases {
		out.Databases = append(out.Databases, database{db.Name, string(db.Type), shortDuration(db.Every)})
	}
	return out
}

// shortDuration prints durations as the file has them: 1h rather than
// 1h0m0s, 2d rather than 48h.
func shortDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

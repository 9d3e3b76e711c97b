package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/escrow-backup/escrow/agent/config"
	"github.com/escrow-backup/escrow/notify"
)

func newNotifyCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Alerts: send a test message to the configured webhooks and email",
		Args:  exactArgs(0),
	}
	var file string
	test := &cobra.Command{
		Use:   "test",
		Short: "Send a test message to every webhook and email recipient in the configuration",
		Long: `Send one test message through every alert channel of the configuration's
notify section, and report each one's result.

Exit status: 0 when every channel took the message; 1 when one failed; 2 for
usage errors, including a configuration without any channel.`,
		Example: "  escrow notify test --config /etc/escrow/escrow.yaml",
		Args:    exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				return configProblems(g, file, err)
			}
			senders, err := notifySenders(cfg)
			if err != nil {
				return usageError(err)
			}
			if len(senders) == 0 {
				return usageError(fmt.Errorf("%s sends no alerts: add a webhook under notify.webhooks or an email server under notify.email (see docs/monitoring.md)", file))
			}
			e := notify.Event{Kind: notify.Test, Subject: "escrow notify test", Host: cfg.Host, Time: time.Now(),
				Message: "This is a test message from escrow on " + cfg.Host + ". Alerts from this host will arrive here."}
			var failed []error
			for _, s := range senders {
				if err := notify.SendOne(cmd.Context(), s, e, 30*time.Second); err != nil {
					g.printf("FAILED  %s: %v\n", s.Name(), err)
					failed = append(failed, err)
					continue
				}
				g.printf("sent    %s\n", s.Name())
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d of %d alert channels failed", len(failed), len(senders))
			}
			return nil
		},
	}
	test.Flags().StringVar(&file, "config", defaultConfigFile, "the configuration file")
	cmd.AddCommand(test)
	return cmd
}

// notifySenders builds the alert channels of cfg, reading their secrets.
func notifySenders(cfg *config.Config) ([]notify.Sender, error) {
	var out []notify.Sender
	for i, w := range cfg.Notify.Webhooks {
		u, err := cfg.WebhookURL(i)
		if err != nil {
			return nil, err
		}
		wh, err := notify.NewWebhook(u, w.Style, nil)
		if err != nil {
			return nil, fmt.Errorf("notify.webhooks[%d]: %w", i, err)
		}
		out = append(out, wh)
	}
	if e := cfg.Notify.Email; e.Server != "" {
		pw, err := cfg.EmailPassword()
		if err != nil {
			return nil, err
		}
		out = append(out, &notify.Email{Server: e.Server, TLS: e.TLS, Username: e.Username, Password: pw, From: e.From, To: e.To})
	}
	return out, nil
}

// startNotifier runs the agent's Notifier until the returned stop is
// called, which sends what is queued first. Without channels it returns
// nil (no alerts) and a no-op stop.
func startNotifier(ctx context.Context, cfg *config.Config, log *slog.Logger) (*notify.Notifier, func(), error) {
	senders, err := notifySenders(cfg)
	if err != nil {
		return nil, nil, usageError(err)
	}
	if len(senders) == 0 {
		return nil, func() {}, nil
	}
	n := notify.New(senders, notify.Options{Host: cfg.Host, RepeatAfter: cfg.Notify.RepeatAfter, Logger: log})
	nctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); n.Run(nctx) }()
	return n, func() { cancel(); <-done }, nil
}

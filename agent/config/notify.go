package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Notify configures alerts (docs/monitoring.md). With no webhook and no
// email server, no alert is sent.
type Notify struct {
	// RepeatAfter is how often a problem that lasts is sent again.
	RepeatAfter time.Duration `yaml:"repeat_after"`
	Webhooks    []Webhook     `yaml:"webhooks"`
	Email       Email         `yaml:"email"`
}

// Webhook is an HTTP endpoint alerts are POSTed to. Its URL is read from a
// file: chat and health-check URLs carry their token in the address.
type Webhook struct {
	URLFile string `yaml:"url_file"`
	Style   string `yaml:"style"` // "json" or "ping"
}

// Email sends alerts by SMTP.
type Email struct {
	Server       string   `yaml:"server"` // host:port; empty: no email
	TLS          string   `yaml:"tls"`    // "starttls", "tls" or "none"
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	From         string   `yaml:"from"`
	To           []string `yaml:"to"`
}

// The defaults of the notify and metrics fields.
const (
	DefaultRepeatAfter = 24 * time.Hour
	// DefaultMetricsHost is where metrics_listen binds when it names only
	// a port: the metrics name paths and databases, so they stay on this
	// machine unless asked otherwise.
	DefaultMetricsHost = "127.0.0.1"
)

func (d *decoder) notifyFields(n *Notify) []field {
	return []field{
		{"repeat_after", d.duration(&n.RepeatAfter, time.Minute)},
		{"webhooks", func(v *yaml.Node, p string) {
			d.seq(v, p, func(v *yaml.Node, p string) {
				w := Webhook{Style: "json"}
				d.mapping(v, p, []field{
					{"url_file", d.path(&w.URLFile, true)},
					{"style", d.oneOf(&w.Style, "json", "ping")},
				})
				n.Webhooks = append(n.Webhooks, w)
			})
		}},
		{"email", func(v *yaml.Node, p string) {
			e := &n.Email
			d.mapping(v, p, []field{
				{"server", d.str(&e.Server)},
				{"tls", d.oneOf(&e.TLS, "starttls", "tls", "none")},
				{"username", d.str(&e.Username)},
				{"password_file", d.path(&e.PasswordFile, true)},
				{"from", d.str(&e.From)},
				{"to", d.strs(&e.To)},
			})
		}},
	}
}

// validateNotify checks what needs more than one field.
func (d *decoder) validateNotify(c *Config) {
	for i, w := range c.Notify.Webhooks {
		p := fmt.Sprintf("notify.webhooks[%d]", i)
		if w.URLFile == "" && !d.bad[p] && !d.bad[p+".url_file"] {
			d.add(d.lines[p], p+".url_file", "missing; give the file holding the webhook's URL (chmod 600: the URL holds its token)")
		}
	}
	e := c.Notify.Email
	switch {
	case d.bad["notify.email"] || d.bad["notify.email.server"]:
	case e.Server == "":
		if e.Username != "" || e.PasswordFile != "" || e.From != "" || len(e.To) > 0 {
			d.at("notify.email.server", "missing; give the SMTP server as host:port (e.g. smtp.example.com:587), or remove the other email fields")
		}
	default:
		if _, port, err := net.SplitHostPort(e.Server); err != nil || !validPort(port) {
			d.at("notify.email.server", "%q is not host:port; write it like smtp.example.com:587 (STARTTLS) or smtp.example.com:465 (tls: tls)", e.Server)
		}
		if e.From == "" && !d.bad["notify.email.from"] {
			d.at("notify.email.from", "missing; give the sender address, e.g. escrow@example.com")
		}
		if len(e.To) == 0 && !d.bad["notify.email.to"] {
			d.at("notify.email.to", "missing; give at least one recipient, e.g. to: [owner@example.com]")
		}
		if e.Username != "" && e.PasswordFile == "" && !d.bad["notify.email.password_file"] {
			d.at("notify.email.password_file", "missing; username is set, so give the file holding its password (chmod 600)")
		}
		for j, a := range append([]string{e.From}, e.To...) {
			if strings.ContainsAny(a, "\r\n<>,") || (a != "" && !strings.Contains(a, "@")) {
				field := "notify.email.from"
				if j > 0 {
					field = fmt.Sprintf("notify.email.to[%d]", j-1)
				}
				d.at(field, "%q is not one mail address like name@example.com", a)
			}
		}
	}
	if l := c.MetricsListen; l != "" && !d.bad["metrics_listen"] {
		if _, port, err := net.SplitHostPort(l); err != nil || !validPort(port) {
			d.at("metrics_listen", "%q is not [HOST]:PORT; write it like 127.0.0.1:9310 (or :9310, which also means 127.0.0.1)", l)
		}
	}
}

// validPort reports whether port is a TCP port number, 1 to 65535. A name
// ("smtp") or a number out of range would only fail when the agent first
// dials or listens, far from the line that caused it.
func validPort(port string) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n >= 1 && n <= 65535
}

// MetricsAddress is the address the metrics endpoint listens on: a
// metrics_listen without a host means loopback, never every interface.
func (c *Config) MetricsAddress() string {
	if c.MetricsListen == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(c.MetricsListen)
	if err != nil {
		return c.MetricsListen
	}
	if host == "" {
		host = DefaultMetricsHost
	}
	return net.JoinHostPort(host, port)
}

// WebhookURL reads the URL of webhook i from its file.
func (c *Config) WebhookURL(i int) (string, error) {
	u, err := readSecret(c.Notify.Webhooks[i].URLFile, "webhook URL", maxSecret)
	if err != nil {
		return "", fmt.Errorf("notify.webhooks[%d].url_file: %w", i, err)
	}
	return u, nil
}

// EmailPassword reads the SMTP password; empty without password_file.
func (c *Config) EmailPassword() (string, error) {
	if c.Notify.Email.PasswordFile == "" {
		return "", nil
	}
	pw, err := readSecret(c.Notify.Email.PasswordFile, "SMTP password", maxSecret)
	if err != nil {
		return "", fmt.Errorf("notify.email.password_file: %w", err)
	}
	return pw, nil
}

// checkNotifyFiles checks the secret files the notify section names.
func (c *Config) checkNotifyFiles(p *problems) {
	for i, w := range c.Notify.Webhooks {
		checkSecretFile(p, fmt.Sprintf("notify.webhooks[%d].url_file", i), w.URLFile, "webhook URL")
	}
	checkSecretFile(p, "notify.email.password_file", c.Notify.Email.PasswordFile, "SMTP password")
}

package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// Email TLS modes.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS (port 587); required, never skipped
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // no encryption: only for a relay on this machine or a trusted network
)

// Email sends events by SMTP.
type Email struct {
	Server   string // host:port
	TLS      string // TLSStartTLS (default), TLSImplicit or TLSNone
	Username string // empty: no authentication
	Password string
	From     string
	To       []string
	// RootCAs replaces the system's CAs (tests, private CAs); nil: the
	// system's. Certificates are always verified.
	RootCAs *x509.CertPool
}

// Name is the server's address.
func (m *Email) Name() string { return "email via " + m.Server }

// Send delivers e as one message to every recipient.
func (m *Email) Send(ctx context.Context, e Event) error {
	if err := m.send(ctx, e); err != nil {
		return fmt.Errorf("%s: %w", m.Name(), err)
	}
	return nil
}

func (m *Email) send(ctx context.Context, e Event) error {
	host, _, err := net.SplitHostPort(m.Server)
	if err != nil {
		return fmt.Errorf("server %q is not host:port (e.g. smtp.example.com:587)", m.Server)
	}
	if m.From == "" || len(m.To) == 0 {
		return errors.New("no sender or no recipients: set email from and to")
	}
	tlsConfig := &tls.Config{ServerName: host, RootCAs: m.RootCAs, MinVersion: tls.VersionTLS12}
	var conn net.Conn
	if m.TLS == TLSImplicit {
		conn, err = (&tls.Dialer{Config: tlsConfig}).DialContext(ctx, "tcp", m.Server)
	} else {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", m.Server)
	}
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// net/smtp takes no context: the deadline ends a server that hangs,
	// and closing the connection ends a cancelled send.
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if m.TLS == "" || m.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server does not offer STARTTLS; use its TLS port with tls: tls, or tls: none only for a relay on this machine")
		}
		if err := c.StartTLS(tlsConfig); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if m.Username != "" {
		// PlainAuth refuses to send the password over a connection that
		// is neither TLS nor to localhost.
		if err := c.Auth(smtp.PlainAuth("", m.Username, m.Password, host)); err != nil {
			return fmt.Errorf("login as %s: %w (check username and password_file)", m.Username, err)
		}
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("sender %s: %w", m.From, err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("recipient %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(m.message(e)); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	return c.Quit()
}

// message is the mail: headers and a plain text body with CRLF lines.
func (m *Email) message(e Event) []byte {
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", m.From)
	hdr("To", strings.Join(m.To, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", e.Title()))
	hdr("Date", e.Time.Format(time.RFC1123Z))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	body := fmt.Sprintf("%s\n\nhost: %s\nkind: %s\nsubject: %s\ntime: %s\n", e.Message, e.Host, e.Kind, e.Subject, e.Time.Format(time.RFC3339))
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes()
}

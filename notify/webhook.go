package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Webhook styles.
const (
	// StyleJSON POSTs the event as JSON, with "text" and "content" fields
	// holding a readable message, which chat incoming-webhooks (Slack,
	// Mattermost, Rocket.Chat, Discord) display as they are.
	StyleJSON = "json"
	// StylePing is for health-check services (healthchecks.io and its
	// kind): a POST to the URL says all is well (recoveries and tests), a
	// POST to URL/fail says something is wrong; the body is the message.
	StylePing = "ping"
)

// Webhook sends events to an HTTP(S) URL. The URL is a secret (it usually
// holds a token), so it appears in no message: Name shows only its host.
type Webhook struct {
	url    string
	style  string
	client *http.Client
}

// NewWebhook checks the URL and style; client nil uses one with no
// redirects followed (a redirect could carry the message elsewhere).
func NewWebhook(rawURL, style string, client *http.Client) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("the webhook URL is not an http:// or https:// address (the URL is not shown: it may hold a token)")
	}
	switch style {
	case "":
		style = StyleJSON
	case StyleJSON, StylePing:
	default:
		return nil, fmt.Errorf("unknown webhook style %q; use json or ping", style)
	}
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &Webhook{url: rawURL, style: style, client: client}, nil
}

// Name is the webhook's host, never its path or query.
func (w *Webhook) Name() string {
	u, _ := url.Parse(w.url)
	return "webhook " + u.Scheme + "://" + u.Host
}

// Send POSTs e; any answer but 2xx is an error.
func (w *Webhook) Send(ctx context.Context, e Event) error {
	text := e.Title() + "\n" + e.Message
	target, body, ctype := w.url, []byte(text), "text/plain; charset=utf-8"
	if w.style == StyleJSON {
		var err error
		body, err = json.Marshal(struct {
			Text    string `json:"text"`
			Content string `json:"content"`
			Event
		}{text, text, e})
		if err != nil {
			return err
		}
		ctype = "application/json"
	} else if !e.Recovered && e.Kind != Test {
		target = strings.TrimSuffix(w.url, "/") + "/fail"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", w.Name(), errors.New("cannot make the request"))
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "escrow")
	resp, err := w.client.Do(req)
	if err != nil {
		// url.Error repeats the URL, token included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s: %w (check the address in url_file and the network)", w.Name(), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s (check the URL in url_file; for a chat service, that the webhook still exists)", w.Name(), resp.Status)
	}
	return nil
}

// Package notify tells people when backups go wrong, by webhook (a JSON
// POST, or a ping to a health-check URL) and by email (SMTP), and again
// when they recover.
//
// A Notifier rate-limits: a problem is sent when it starts, then at most
// once per RepeatAfter while it lasts, and a recovery notice when it ends.
// Sending runs on the Notifier's own goroutine, so a slow mail server never
// holds up a backup.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Kind is what an alert is about.
type Kind string

// The kinds of alerts.
const (
	BackupFailed   Kind = "backup_failed"
	DumpFailed     Kind = "dump_failed"
	Stale          Kind = "stale"           // older than its target freshness
	EscrowWorse    Kind = "escrow_worse"    // the doctor verdict got worse
	KitUnconfirmed Kind = "kit_unconfirmed" // the recovery kit is still unconfirmed
	MassDeletion   Kind = "mass_deletion"   // many files deleted at once, or a dump shrank sharply
	Test           Kind = "test"
)

// Event is one message.
type Event struct {
	Kind Kind `json:"kind"`
	// Subject is what the event is about: a source path, a database name,
	// "recovery kit", "escrow".
	Subject string    `json:"subject"`
	Host    string    `json:"host"`
	Time    time.Time `json:"time"`
	// Message says what happened and what to do, in one paragraph. It
	// never holds a secret: it is built from the agent's error messages,
	// which name objects and files only.
	Message string `json:"message"`
	// Recovered marks the notice that a problem ended.
	Recovered bool `json:"recovered"`
}

// Title is a one-line summary, for a mail subject or a chat line.
func (e Event) Title() string {
	if e.Recovered {
		return fmt.Sprintf("[escrow] %s: recovered: %s %s", e.Host, e.Kind, e.Subject)
	}
	return fmt.Sprintf("[escrow] %s: %s %s", e.Host, e.Kind, e.Subject)
}

// Sender delivers one event.
type Sender interface {
	// Name says where events go, without secrets, for logs.
	Name() string
	Send(ctx context.Context, e Event) error
}

// Options configure a Notifier.
type Options struct {
	Host string
	// RepeatAfter is how often an ongoing problem is sent again (default
	// 24h).
	RepeatAfter time.Duration
	// Timeout bounds one send (default 30s).
	Timeout time.Duration
	Logger  *slog.Logger
	Now     func() time.Time
}

// Notifier sends problems and recoveries to every sender, rate-limited per
// kind and subject.
type Notifier struct {
	senders []Sender
	opts    Options
	queue   chan Event

	mu     sync.Mutex
	active map[key]time.Time // problem → when it was last sent
}

type key struct {
	kind    Kind
	subject string
}

// queueSize bounds the events waiting to be sent; beyond it events are
// dropped with a warning rather than blocking the agent.
const queueSize = 64

// New makes a Notifier; Run sends its events.
func New(senders []Sender, opts Options) *Notifier {
	if opts.RepeatAfter <= 0 {
		opts.RepeatAfter = 24 * time.Hour
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Notifier{senders: senders, opts: opts, queue: make(chan Event, queueSize), active: map[key]time.Time{}}
}

// Problem reports that kind of trouble with subject: it is sent if it is
// new, or if it was last sent more than RepeatAfter ago.
func (n *Notifier) Problem(kind Kind, subject, message string) {
	if n == nil {
		return
	}
	now := n.opts.Now()
	k := key{kind, subject}
	n.mu.Lock()
	last, ok := n.active[k]
	send := !ok || now.Sub(last) >= n.opts.RepeatAfter
	if send {
		n.active[k] = now
	}
	n.mu.Unlock()
	if send {
		n.enqueue(Event{Kind: kind, Subject: subject, Host: n.opts.Host, Time: now, Message: message})
	}
}

// Resolved reports that kind of trouble with subject is over: a recovery
// notice is sent if a problem had been sent.
func (n *Notifier) Resolved(kind Kind, subject, message string) {
	if n == nil {
		return
	}
	k := key{kind, subject}
	n.mu.Lock()
	_, ok := n.active[k]
	delete(n.active, k)
	n.mu.Unlock()
	if ok {
		n.enqueue(Event{Kind: kind, Subject: subject, Host: n.opts.Host, Time: n.opts.Now(), Message: message, Recovered: true})
	}
}

func (n *Notifier) enqueue(e Event) {
	select {
	case n.queue <- e:
	default:
		n.opts.Logger.Warn("too many alerts waiting to be sent; dropping one", "kind", e.Kind, "subject", e.Subject)
	}
}

// Run sends queued events until ctx ends, then sends what is still queued
// and returns. Each send is bounded by Timeout rather than by ctx, so that
// the alert about a failure that stops the agent still goes out.
func (n *Notifier) Run(ctx context.Context) {
	sendCtx := context.WithoutCancel(ctx)
	for {
		select {
		case e := <-n.queue:
			n.send(sendCtx, e)
		case <-ctx.Done():
			for {
				select {
				case e := <-n.queue:
					n.send(sendCtx, e)
				default:
					return
				}
			}
		}
	}
}

// send delivers e to every sender; a failure is logged and does not stop
// the others.
func (n *Notifier) send(ctx context.Context, e Event) {
	for _, s := range n.senders {
		if err := SendOne(ctx, s, e, n.opts.Timeout); err != nil {
			n.opts.Logger.Error("cannot send an alert", "to", s.Name(), "kind", e.Kind, "subject", e.Subject, "err", err)
		} else {
			n.opts.Logger.Info("alert sent", "to", s.Name(), "kind", e.Kind, "subject", e.Subject, "recovered", e.Recovered)
		}
	}
}

// SendOne sends e through s within timeout.
func SendOne(ctx context.Context, s Sender, e Event, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.Send(ctx, e); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: no answer within %s: %w", s.Name(), timeout, err)
		}
		return err
	}
	return nil
}

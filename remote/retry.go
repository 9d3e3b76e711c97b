package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"
)

// RetryOptions tune WithRetry. Zero fields take the defaults.
type RetryOptions struct {
	// MaxElapsed bounds the time from the first attempt to the last;
	// default DefaultRetryBudget.
	MaxElapsed time.Duration
	// InitialInterval is the wait before the second attempt; default 500ms.
	InitialInterval time.Duration
	// MaxInterval caps the doubling wait between attempts; default 30s.
	MaxInterval time.Duration
	// Logger receives one Warn record per retry; default discards.
	Logger *slog.Logger
	// Now and Sleep replace the clock in tests. Sleep must return ctx.Err()
	// if ctx ends first. Defaults: time.Now and a timer.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter maps a wait to the wait actually used; default picks uniformly
	// from [d/2, d) so that many clients failing together spread out.
	Jitter func(d time.Duration) time.Duration
}

// DefaultRetryBudget is how long an unreachable store is retried by
// default. It rides out an outage of up to 15 minutes: the wait between
// attempts is capped at 30 s (MaxInterval), so the attempt after a
// 15-minute outage falls at most 30 s past it, inside the budget; an outage
// of 17 minutes or more ends with the budget's error.
const DefaultRetryBudget = 16 * time.Minute

func (o RetryOptions) withDefaults() RetryOptions {
	if o.MaxElapsed <= 0 {
		o.MaxElapsed = DefaultRetryBudget
	}
	if o.InitialInterval <= 0 {
		o.InitialInterval = 500 * time.Millisecond
	}
	if o.MaxInterval <= 0 {
		o.MaxInterval = 30 * time.Second
	}
	if o.MaxInterval < o.InitialInterval {
		o.MaxInterval = o.InitialInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Jitter == nil {
		o.Jitter = func(d time.Duration) time.Duration {
			return d/2 + rand.N(d/2+1)
		}
	}
	return o
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WithRetry returns a Backend that retries b's failed operations with
// exponential backoff and jitter until opts.MaxElapsed is spent. Errors for
// which IsPermanent is true are returned at once.
//
// Retries are safe because objects are immutable: saving the same bytes
// again, or reading again, has the same effect as doing it once.
func WithRetry(b Backend, opts RetryOptions) Backend {
	return &retryBackend{b: b, o: opts.withDefaults()}
}

type retryBackend struct {
	b Backend
	o RetryOptions
}

func (r *retryBackend) do(ctx context.Context, what string, op func() error) error {
	return retry(ctx, r.o, r.b.Location(), what, op)
}

// Retry runs op with the same policy as WithRetry: until it succeeds, fails
// permanently, ctx ends or the budget is spent. It is for operations outside
// a Backend, such as connecting to the store. what and location name the
// operation for the log.
func Retry(ctx context.Context, opts RetryOptions, location, what string, op func() error) error {
	return retry(ctx, opts.withDefaults(), location, what, op)
}

func retry(ctx context.Context, o RetryOptions, location, what string, op func() error) error {
	start := o.Now()
	wait := o.InitialInterval
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		err := op()
		if err == nil || IsPermanent(err) {
			return err
		}
		elapsed := o.Now().Sub(start)
		d := o.Jitter(wait)
		// Give up now rather than sleep past the budget only to try once more.
		if elapsed+d > o.MaxElapsed {
			return fmt.Errorf("gave up after %d attempts over %s: the store at %s stayed unreachable for the whole retry budget of %s "+
				"(check that it is running and reachable from this host, then run again; escrow's --retry-for flag sets the budget): %w",
				attempt, elapsed.Round(time.Millisecond), location, o.MaxElapsed, err)
		}
		o.Logger.LogAttrs(ctx, slog.LevelWarn, "remote operation failed, will retry",
			slog.String("op", what), slog.String("location", location),
			slog.Int("attempt", attempt), slog.Duration("wait", d), slog.Any("err", err))
		if serr := o.Sleep(ctx, d); serr != nil {
			return fmt.Errorf("%w (after %d attempts; last error: %w)", serr, attempt, err)
		}
		wait = min(2*wait, o.MaxInterval)
	}
}

func (r *retryBackend) Location() string { return r.b.Location() }
func (r *retryBackend) Close() error     { return r.b.Close() }

func (r *retryBackend) Save(ctx context.Context, h Handle, data []byte) error {
	return r.do(ctx, "save "+h.String(), func() error {
		return r.b.Save(ctx, h, data)
	})
}

// Load reads the whole range into memory inside the retry loop, so that a
// connection reset or a truncated body halfway through is retried too
// rather than surfacing to a caller that has already consumed half the data.
func (r *retryBackend) Load(ctx context.Context, h Handle, offset, length int64) (io.ReadCloser, error) {
	data, err := r.loadInto(ctx, h, offset, length, nil)
	if err != nil {
		return nil, err
	}
	return &bufferedReader{Reader: bytes.NewReader(data), data: data}, nil
}

// loadInto is Load into buf, which is reused when its capacity suffices.
func (r *retryBackend) loadInto(ctx context.Context, h Handle, offset, length int64, buf []byte) ([]byte, error) {
	var data []byte
	err := r.do(ctx, "load "+h.String(), func() error {
		rd, err := r.b.Load(ctx, h, offset, length)
		if err != nil {
			return err
		}
		data, err = readInto(rd, length, buf)
		if cerr := rd.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("load %s: %w", h, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

func (r *retryBackend) Stat(ctx context.Context, h Handle) (FileInfo, error) {
	var fi FileInfo
	err := r.do(ctx, "stat "+h.String(), func() error {
		var err error
		fi, err = r.b.Stat(ctx, h)
		return err
	})
	return fi, err
}

// Remove treats "not found" after a failed attempt as success: the failed
// attempt may have deleted the object before its answer was lost.
func (r *retryBackend) Remove(ctx context.Context, h Handle) error {
	attempts := 0
	return r.do(ctx, "remove "+h.String(), func() error {
		attempts++
		err := r.b.Remove(ctx, h)
		if attempts > 1 && IsNotFound(err) {
			return nil
		}
		return err
	})
}

// errFn marks an error returned by the caller's fn, which is passed through
// untouched and never retried.
type errFn struct{ err error }

func (e errFn) Error() string { return e.err.Error() }
func (e errFn) Unwrap() error { return e.err }

// List retries only while fn has not been called: once it has seen an
// object, a retry would call it again for the same objects, and fn need not
// be idempotent.
func (r *retryBackend) List(ctx context.Context, t FileType, fn func(FileInfo) error) error {
	called := false
	err := r.do(ctx, "list "+string(t), func() error {
		err := r.b.List(ctx, t, func(fi FileInfo) error {
			called = true
			if err := fn(fi); err != nil {
				return errFn{err}
			}
			return nil
		})
		if err == nil || !called {
			return err
		}
		return permanent{err}
	})
	var fe errFn
	if errors.As(err, &fe) {
		return fe.err
	}
	var p permanent
	if errors.As(err, &p) {
		return p.err
	}
	return err
}

// permanent stops the retry loop for an error that is not permanent by
// itself; it is unwrapped again before the caller sees it.
type permanent struct{ err error }

func (p permanent) Error() string        { return p.err.Error() }
func (p permanent) Is(target error) bool { return target == ErrPermanent }
func (p permanent) Unwrap() error        { return p.err }

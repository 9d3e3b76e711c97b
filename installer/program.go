package installer

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/kardianos/service"
)

// Program is the agent as a kardianos/service program: Start launches it in
// a goroutine and returns at once, as service managers require; Stop asks it
// to stop and waits for it, up to a timeout.
type Program struct {
	run     func(context.Context) error
	timeout time.Duration

	mu       sync.Mutex
	started  bool
	stopping bool
	cancel   context.CancelFunc
	done     chan struct{}
	err      error // set before done is closed
}

// NewProgram returns a program that runs run until its context ends. run
// must return within StopTimeout of that (the agent does, in 30 s).
func NewProgram(run func(context.Context) error) *Program {
	return &Program{run: run, timeout: StopTimeout, done: make(chan struct{})}
}

// Start launches the agent and returns at once.
func (p *Program) Start(service.Service) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started {
		return errors.New("the agent is already started")
	}
	p.started = true
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		err := p.run(ctx)
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return nil
}

// Stop asks the agent to stop and waits for it. It returns the agent's
// error: nil after a clean stop.
func (p *Program) Stop(service.Service) error {
	p.mu.Lock()
	if !p.started {
		p.mu.Unlock()
		return nil
	}
	p.stopping = true
	p.cancel()
	p.mu.Unlock()
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.Err()
	case <-t.C:
		return fmt.Errorf("the agent did not stop within %v of being asked", p.timeout)
	}
}

// Done is closed when the agent has returned, whether asked to or not.
func (p *Program) Done() <-chan struct{} { return p.done }

// Err is the agent's error once Done is closed.
func (p *Program) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// stopRequested reports whether Stop was called.
func (p *Program) stopRequested() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// Run runs p under the service manager that started the process, or in the
// foreground: it starts p, waits until ctx ends (the process was asked to
// stop: SIGTERM, SIGINT) or the agent returns on its own, then stops p and
// returns the agent's error. systemd, SysV init and launchd run exactly
// this; under the Windows service control manager, the manager's stop
// request takes the place of ctx.
func Run(ctx context.Context, p *Program, o Options) error {
	if runtime.GOOS == "windows" {
		if service.Interactive() {
			return foreground(ctx, p)
		}
		return runWindowsService(p, o)
	}
	c := o.ServiceConfig()
	c.Option["RunWait"] = func() {
		select {
		case <-ctx.Done():
		case <-p.Done():
		}
	}
	s, err := service.New(p, c)
	if err != nil {
		return err
	}
	return s.Run()
}

// foreground is Run without a service manager.
func foreground(ctx context.Context, p *Program) error {
	if err := p.Start(nil); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case <-p.Done():
	}
	return p.Stop(nil)
}

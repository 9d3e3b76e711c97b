package installer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestServiceProgramStartReturnsAtOnceStopWaits(t *testing.T) {
	stopped := make(chan struct{})
	p := NewProgram(func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(200 * time.Millisecond) // finishing a snapshot
		close(stopped)
		return nil
	})
	start := time.Now()
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 100*time.Millisecond {
		t.Error("Start blocked")
	}
	if err := p.Start(nil); err == nil {
		t.Error("a second Start was accepted")
	}
	if err := p.Stop(nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-stopped:
	default:
		t.Fatal("Stop returned before the agent did")
	}
}

func TestServiceProgramStopReturnsTheAgentsError(t *testing.T) {
	boom := errors.New("wrong password")
	p := NewProgram(func(ctx context.Context) error { return boom })
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	<-p.Done() // ended on its own
	if p.stopRequested() {
		t.Error("stop requested")
	}
	if err := p.Stop(nil); !errors.Is(err, boom) {
		t.Errorf("Stop: %v, want %v", err, boom)
	}
}

func TestServiceProgramStopTimesOut(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	p := NewProgram(func(ctx context.Context) error { <-release; return nil })
	p.timeout = 100 * time.Millisecond
	if err := p.Start(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(nil); err == nil || !strings.Contains(err.Error(), "did not stop within") {
		t.Errorf("Stop: %v", err)
	}
}

func TestServiceProgramStopBeforeStart(t *testing.T) {
	if err := NewProgram(nil).Stop(nil); err != nil {
		t.Error(err)
	}
}

// Run, the service wrapper, ends when its context does (the process got
// SIGTERM) or when the agent ends on its own, and returns the agent's
// error either way.
func TestServiceRunForeground(t *testing.T) {
	o, err := testOptions(t).Defaults()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := NewProgram(func(ctx context.Context) error { <-ctx.Done(); return nil })
	done := make(chan error, 1)
	go func() { done <- Run(ctx, p, o) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}

	boom := errors.New("configuration has problems")
	p = NewProgram(func(context.Context) error { return boom })
	go func() { done <- Run(context.Background(), p, o) }()
	select {
	case err := <-done:
		if !errors.Is(err, boom) {
			t.Fatalf("Run: %v, want %v", err, boom)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the agent ended on its own")
	}
}

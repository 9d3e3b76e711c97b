package agent

import (
	"context"
	"time"

	"github.com/escrow-backup/escrow/agent/heartbeat"
)

// beater writes the agent's heartbeat to the store. It only ever saves
// (PUT) its one object, never removes it: the host's credentials need no
// delete right.
type beater struct {
	a      *Agent
	hostID string
}

func (a *Agent) newBeater() (*beater, error) {
	id, err := heartbeat.HostID(a.opts.StateDir, a.opts.Host)
	if err != nil {
		return nil, err
	}
	a.setStatus(func() { a.status.HostID = id })
	return &beater{a: a, hostID: id}, nil
}

// run writes a heartbeat, and checks the states alerts are sent about,
// now and then every HeartbeatEvery (5 minutes when heartbeats are off)
// until ctx ends.
func (b *beater) run(ctx context.Context) {
	every := b.a.opts.HeartbeatEvery
	if every < 0 {
		every = 5 * time.Minute
	}
	b.tick(ctx)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.tick(ctx)
		case <-b.a.beat:
			if b.a.opts.HeartbeatEvery > 0 {
				b.write(ctx, false)
			}
		}
	}
}

func (b *beater) tick(ctx context.Context) {
	v, err := heartbeat.ReadVerdict(b.a.opts.StateDir)
	if err != nil {
		b.a.log.Warn("the escrow verdict is unreadable", "err", err)
	}
	b.a.checkHealth(v)
	if b.a.opts.HeartbeatEvery > 0 {
		b.write(ctx, false)
	}
}

// beatSoon asks for a heartbeat now, when a backup failed or recovered:
// the fleet view need not wait a whole period to see it.
func (a *Agent) beatSoon() {
	select {
	case a.beat <- struct{}{}:
	default:
	}
}

// final writes the heartbeat that says the agent stopped on purpose, so a
// fleet view tells a stopped service from a vanished server.
func (b *beater) final(ctx context.Context) {
	if b.a.opts.HeartbeatEvery < 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b.write(ctx, true)
}

// write saves one heartbeat. A store that does not answer within the
// period is given up on until the next one: a late heartbeat is worth
// less than the next, fresh one.
func (b *beater) write(ctx context.Context, stopped bool) {
	hb := b.a.heartbeat(b.hostID, stopped)
	data, err := heartbeat.Marshal(hb)
	if err == nil {
		timeout := max(b.a.opts.HeartbeatEvery, 30*time.Second)
		wctx, cancel := context.WithTimeout(ctx, timeout)
		err = b.a.r.Backend().Save(wctx, heartbeat.Handle(b.hostID), data)
		cancel()
	}
	if err != nil {
		if ctx.Err() == nil {
			b.a.log.Warn("cannot write the heartbeat; the fleet view will show this host as silent until it succeeds", "err", err)
		}
		b.a.setStatus(func() { b.a.status.HeartbeatError = err.Error() })
		return
	}
	b.a.log.Debug("heartbeat written", "host_id", b.hostID)
	b.a.setStatus(func() { b.a.status.LastHeartbeat, b.a.status.HeartbeatError = hb.Time, "" })
}

// heartbeat builds the heartbeat from the current status.
func (a *Agent) heartbeat(hostID string, stopped bool) *heartbeat.Heartbeat {
	st := a.Status()
	hb := &heartbeat.Heartbeat{
		Format: heartbeat.Format, HostID: hostID, Host: st.Host, Version: st.Version,
		Time: a.opts.Now().UTC(), EverySeconds: int64(a.opts.HeartbeatEvery / time.Second),
		Started: st.Started, Stopped: stopped, RepositoryID: a.r.Config().ID,
		Sources: []heartbeat.Item{},
	}
	for i, s := range st.Sources {
		it := heartbeat.Item{
			Name: s.Path, LastGood: s.Verified, FreshSeconds: int64(a.sources[i].FreshWithin / time.Second),
			LastError: s.LastError, LastErrorTime: s.LastErrorTime, Failures: s.Failures,
		}
		if s.LastSnapshot != nil {
			it.LastSnapshot = s.LastSnapshot.ID
		}
		hb.Sources = append(hb.Sources, it)
	}
	for i, j := range st.Jobs {
		it := heartbeat.Item{
			Name: j.Name, LastGood: j.LastSuccess, FreshSeconds: int64(a.jobs[i].FreshWithin / time.Second),
			LastError: j.LastError, LastErrorTime: j.LastErrorTime, Failures: j.Failures,
		}
		if n := len(j.LastSnapshots); n > 0 {
			it.LastSnapshot = j.LastSnapshots[n-1]
		}
		hb.Databases = append(hb.Databases, it)
	}
	v, err := heartbeat.ReadVerdict(a.opts.StateDir)
	if err != nil {
		a.log.Warn("the escrow verdict is unreadable; the heartbeat goes without it", "err", err)
	}
	hb.Escrow = v
	if a.opts.KitConfirmed != nil {
		hb.KitConfirmed = a.opts.KitConfirmed()
	}
	return hb
}

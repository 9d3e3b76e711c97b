package main

import (
	"fmt"
	"time"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/agent/heartbeat"
)

// stale reports whether a source or database last known good at last is
// older than its target freshness (fresh_within, as status writes it). One
// that never succeeded is stale once the agent has run longer than the
// target.
func stale(last time.Time, freshWithin string, started, now time.Time) (bool, time.Duration) {
	fresh, err := time.ParseDuration(freshWithin)
	if err != nil || fresh <= 0 {
		return false, 0
	}
	if last.IsZero() {
		return !started.IsZero() && now.Sub(started) > fresh, fresh
	}
	return now.Sub(last) > fresh, fresh
}

// freshness describes an age against its target for people.
func freshness(last time.Time, freshWithin string, started, now time.Time) string {
	isStale, fresh := stale(last, freshWithin, started, now)
	switch {
	case fresh == 0:
		return "no target"
	case last.IsZero() && isStale:
		return fmt.Sprintf("STALE: no good backup in the %s since the agent started (target %s)", formatAge(now.Sub(started)), formatAge(fresh))
	case last.IsZero():
		return fmt.Sprintf("waiting for the first backup (target %s)", formatAge(fresh))
	case isStale:
		return fmt.Sprintf("STALE: last good %s ago, more than the target %s", formatAge(now.Sub(last)), formatAge(fresh))
	}
	return fmt.Sprintf("yes (last good %s ago, target %s)", formatAge(now.Sub(last)), formatAge(fresh))
}

// freshnessProblems lists the sources and databases older than their
// target. A stopped agent's status is judged at its last report: the agent
// not running is a problem of its own.
func freshnessProblems(st *agent.Status, now time.Time) []string {
	var out []string
	if st.Stopped {
		now = st.Updated
	}
	for _, s := range st.Sources {
		if ok, _ := stale(s.Verified, s.FreshWithin, st.Started, now); ok {
			out = append(out, fmt.Sprintf("%s: %s", s.Path, freshness(s.Verified, s.FreshWithin, st.Started, now)))
		}
	}
	for _, j := range st.Jobs {
		if ok, _ := stale(j.LastSuccess, j.FreshWithin, st.Started, now); ok {
			out = append(out, fmt.Sprintf("%s: %s", j.Name, freshness(j.LastSuccess, j.FreshWithin, st.Started, now)))
		}
	}
	return out
}

// escrowVerdict reads the last escrow doctor verdict and says what is
// worth a warning about it.
func escrowVerdict(stateDir string) (*heartbeat.Verdict, []string) {
	v, err := heartbeat.ReadVerdict(stateDir)
	switch {
	case err != nil:
		return nil, []string{err.Error()}
	case v == nil:
		return nil, []string{"escrow doctor has not run on this host: whether the host can destroy the backups is unknown (run escrow doctor)"}
	case !v.TamperProof:
		return v, []string{fmt.Sprintf("the escrow is not tamper-proof (escrow doctor, %s: %s): whoever controls this host can delete the backups", v.Time.Format(time.DateTime), v.Verdict)}
	}
	return v, nil
}

func printEscrow(g *globalOptions, st *agent.Status, v *heartbeat.Verdict, kitOK bool, warnings []string, now time.Time) {
	g.printf("\n")
	switch {
	case v == nil:
		g.printf("escrow:      unknown (escrow doctor has not run)\n")
	case v.TamperProof:
		g.printf("escrow:      tamper-proof: %s (escrow doctor, %s ago)\n", v.Verdict, formatAge(now.Sub(v.Time)))
	default:
		g.printf("escrow:      NOT TAMPER-PROOF: %s (escrow doctor, %s ago)\n", v.Verdict, formatAge(now.Sub(v.Time)))
	}
	if kitOK {
		g.printf("kit:         confirmed\n")
	} else {
		g.printf("kit:         NOT CONFIRMED: run escrow kit, store it off this server, then escrow kit confirm\n")
	}
	switch {
	case st.HeartbeatError != "":
		g.printf("heartbeat:   FAILING: %s\n", st.HeartbeatError)
	case !st.LastHeartbeat.IsZero():
		g.printf("heartbeat:   written %s ago as %s\n", formatAge(now.Sub(st.LastHeartbeat)), st.HostID)
	default:
		g.printf("heartbeat:   none written yet\n")
	}
	g.printf("version:     escrow %s (agent: %s)\n", version, st.Version)
	for _, w := range warnings {
		g.printf("warning:     %s\n", w)
	}
}

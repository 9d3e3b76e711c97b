// Command agentops drives the agent benchmark (bench/agent.sh). It makes a
// deterministic series of file system operations below a watched tree, and
// it waits for the agent's status file to report a snapshot or a rescan.
//
//	agentops ops -dir SITE -outside DIR [-n 10000] [-seed 1] [-duration 60s]
//	agentops wait -state STATEDIR -snapshot-after NS [-timeout 5m]
//	agentops wait -state STATEDIR -rescan-after NS [-timeout 10m]
//
// ops performs n operations (see ops.go), spread evenly over -duration (0:
// as fast as it can), and prints what it did as key=value pairs, with the
// times of the first and last operation (Unix nanoseconds).
//
// wait polls STATEDIR/status.json every 20 ms until the source's newest
// snapshot started after NS (-snapshot-after; so it holds every change made
// before NS), or until a requested rescan ended after NS (-rescan-after),
// and prints the figures as key=value pairs on one line, seen_ns being when
// the status file first showed it. It fails on timeout, or if the agent
// records a backup error meanwhile.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/escrow-backup/escrow/agent"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "ops":
		err = runOps(os.Args[2:])
	case "wait":
		err = runWait(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentops:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: agentops ops -dir SITE -outside DIR [-n 10000] [-seed 1] [-duration 60s]\n       agentops wait -state STATEDIR (-snapshot-after NS | -rescan-after NS) [-timeout 5m]")
	os.Exit(2)
}

func runOps(args []string) error {
	fs := flag.NewFlagSet("ops", flag.ExitOnError)
	dir := fs.String("dir", "", "the watched tree (required)")
	outside := fs.String("outside", "", "a directory outside the tree, on the same file system (required)")
	n := fs.Int("n", 10000, "number of operations")
	seed := fs.Uint64("seed", 1, "seed: the same seed and tree give the same operations")
	duration := fs.Duration("duration", 0, "spread the operations over this long (0: as fast as possible)")
	_ = fs.Parse(args)
	if *dir == "" || *outside == "" || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	o, err := newOps(*dir, *outside, *seed)
	if err != nil {
		return err
	}
	return o.run(*n, *duration)
}

func runWait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	state := fs.String("state", "", "the agent's state directory (required)")
	snapAfter := fs.Int64("snapshot-after", 0, "wait for a snapshot that started after this time (Unix ns)")
	rescanAfter := fs.Int64("rescan-after", 0, "wait for a requested rescan that ended after this time (Unix ns)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	_ = fs.Parse(args)
	if *state == "" || (*snapAfter == 0) == (*rescanAfter == 0) || fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	deadline := time.Now().Add(*timeout)
	var last string
	for {
		st, running, err := agent.ReadStatus(*state)
		if err != nil && !errors.Is(err, agent.ErrNoStatus) {
			return err
		}
		if st != nil && len(st.Sources) > 0 {
			s := st.Sources[0]
			last = summary(s)
			if *snapAfter != 0 {
				if sn := s.LastSnapshot; sn != nil && sn.Time.UnixNano() > *snapAfter {
					fmt.Printf("seen_ns=%d id=%s kind=%s time_ns=%d seconds=%.3f files_new=%d files_changed=%d bytes_added=%d\n",
						time.Now().UnixNano(), sn.ID, sn.Kind, sn.Time.UnixNano(), sn.Seconds, sn.FilesNew, sn.FilesChanged, sn.BytesAdded)
					return nil
				}
			} else if r := s.LastRescan; r != nil && r.Reason == "requested" && r.Time.UnixNano() > *rescanAfter {
				fmt.Printf("seen_ns=%d time_ns=%d changes=%d missed=%d missed_total=%d\n",
					time.Now().UnixNano(), r.Time.UnixNano(), r.Changes, r.Missed, s.MissedTotal)
				return nil
			}
			if s.LastError != "" && s.LastErrorTime.UnixNano() > max(*snapAfter, *rescanAfter) {
				return fmt.Errorf("the agent's backup failed: %s", s.LastError)
			}
		}
		if st != nil && !running {
			return fmt.Errorf("the agent is not running (%s)", last)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v (%s)", *timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func summary(s agent.SourceStatus) string {
	out := fmt.Sprintf("pending_dirs=%d", s.PendingDirs)
	if sn := s.LastSnapshot; sn != nil {
		out += fmt.Sprintf(" last_snapshot=%s@%s", sn.ID[:8], sn.Time.Format(time.RFC3339Nano))
	}
	if r := s.LastRescan; r != nil {
		out += fmt.Sprintf(" last_rescan=%s@%s", r.Reason, r.Time.Format(time.RFC3339Nano))
	}
	if s.LastError != "" {
		out += " last_error=" + s.LastError
	}
	return out
}

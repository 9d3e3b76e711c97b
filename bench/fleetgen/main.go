// Command fleetgen writes generated heartbeats into a bucket for
// bench/fleet.sh, through the same remote.Backend the agent writes with:
//
//	fleetgen -endpoint 127.0.0.1:9000 -bucket fleet -hosts 1000 -layout shared|prefixes
//
// shared puts every host under one prefix (PREFIX fleet/), prefixes gives
// each host its own (site-0001/ ...). A tenth of the hosts are silent (their
// heartbeat is a day old) and a tenth failing. Credentials come from
// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/escrow-backup/escrow/agent/heartbeat"
	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/s3"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetgen:", err)
		os.Exit(1)
	}
}

func run() error {
	endpoint := flag.String("endpoint", "", "S3 endpoint HOST:PORT (http)")
	bucket := flag.String("bucket", "", "bucket, created if missing")
	hosts := flag.Int("hosts", 1000, "heartbeats to write")
	layout := flag.String("layout", "shared", "shared: one prefix for all hosts; prefixes: one per host")
	flag.Parse()
	if *endpoint == "" || *bucket == "" || (*layout != "shared" && *layout != "prefixes") {
		return errors.New("need -endpoint, -bucket and -layout shared|prefixes")
	}
	cfg := s3.Config{Endpoint: *endpoint, Bucket: *bucket}
	cfg.ApplyEnv(os.Getenv)
	ctx := context.Background()
	be, err := s3.Create(ctx, cfg)
	if err != nil && !errors.Is(err, remote.ErrExists) {
		return err
	}
	now := time.Now().UTC()
	var g errgroup.Group
	g.SetLimit(16)
	for i := range *hosts {
		g.Go(func() error {
			name := fmt.Sprintf("web%04d", i)
			dir := "fleet"
			if *layout == "prefixes" {
				dir = fmt.Sprintf("site-%04d", i)
			}
			hb := &heartbeat.Heartbeat{
				Format: heartbeat.Format, HostID: name + "-0123456789ab", Host: name, Version: "escrow bench",
				Time: now.Add(-time.Minute), EverySeconds: 300, Started: now.Add(-48 * time.Hour), KitConfirmed: true,
				Escrow:    &heartbeat.Verdict{Time: now.Add(-time.Hour), Verdict: "tamper-proof", TamperProof: true},
				Sources:   []heartbeat.Item{{Name: "/var/www/" + name, LastGood: now.Add(-3 * time.Minute), LastSnapshot: "0123456789abcdef", FreshSeconds: 43200}},
				Databases: []heartbeat.Item{{Name: "database mysql", LastGood: now.Add(-20 * time.Minute), FreshSeconds: 7200}},
			}
			switch i % 10 {
			case 3:
				hb.Time = now.Add(-24 * time.Hour)
			case 7:
				hb.Sources[0].LastError, hb.Sources[0].Failures = "open /var/www/x: permission denied", 4
			}
			data, err := heartbeat.Marshal(hb)
			if err != nil {
				return err
			}
			return be.Sub(dir).Save(ctx, heartbeat.Handle(hb.HostID), data)
		})
	}
	return g.Wait()
}

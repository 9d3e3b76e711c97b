package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/escrow-backup/escrow/agent"
)

// statusCollector turns the agent's status into gauges at each scrape, so
// the figures are never older than the status itself.
type statusCollector struct {
	status func() agent.Status
}

var (
	descLastSuccess = prometheus.NewDesc(ns+"_source_last_success_timestamp_seconds",
		"When the source was last known to match a snapshot (a snapshot saved, or a backup that found nothing new).", []string{"source"}, nil)
	descLastSnapshot = prometheus.NewDesc(ns+"_source_last_snapshot_timestamp_seconds",
		"Time of the newest snapshot the agent saved of the source.", []string{"source"}, nil)
	descFresh = prometheus.NewDesc(ns+"_source_fresh_within_seconds",
		"The source's target freshness (fresh_within).", []string{"source"}, nil)
	descFailures = prometheus.NewDesc(ns+"_source_consecutive_failures",
		"Backups of the source that failed in a row; 0 when the last one worked.", []string{"source"}, nil)
	descPending = prometheus.NewDesc(ns+"_source_pending_dirs",
		"Directories with changes waiting for the next snapshot (the source's queue).", []string{"source"}, nil)
	descWatches = prometheus.NewDesc(ns+"_watcher_watches",
		"Directories of the source with a file system watch.", []string{"source"}, nil)
	descWatching = prometheus.NewDesc(ns+"_watcher_watching",
		"1 when every directory of the source is watched, 0 when only rescans protect it.", []string{"source"}, nil)
	descEvents = prometheus.NewDesc(ns+"_watcher_events_total",
		"File system events seen for the source.", []string{"source"}, nil)
	descMissed = prometheus.NewDesc(ns+"_watcher_missed_total",
		"Changes scheduled rescans found that the watcher had not reported (the target is 0).", []string{"source"}, nil)
	descDeferred = prometheus.NewDesc(ns+"_source_deferred_files",
		"Files that kept changing while read, waiting to be saved.", []string{"source"}, nil)
	descDumpSuccess = prometheus.NewDesc(ns+"_database_last_success_timestamp_seconds",
		"When the database was last dumped successfully.", []string{"database"}, nil)
	descDumpFresh = prometheus.NewDesc(ns+"_database_fresh_within_seconds",
		"The database's target freshness (fresh_within).", []string{"database"}, nil)
	descDumpFailures = prometheus.NewDesc(ns+"_database_consecutive_failures",
		"Dumps of the database that failed in a row.", []string{"database"}, nil)
	descHeartbeat = prometheus.NewDesc(ns+"_heartbeat_last_timestamp_seconds",
		"When the agent last wrote its heartbeat to the store.", nil, nil)
	descHeartbeatFailing = prometheus.NewDesc(ns+"_heartbeat_failing",
		"1 when the latest heartbeat could not be written.", nil, nil)
	descStarted = prometheus.NewDesc(ns+"_agent_start_timestamp_seconds",
		"When the agent started.", []string{"version"}, nil)
)

// Describe sends nothing: the sources and databases change with the
// configuration, so this is an unchecked collector.
func (c *statusCollector) Describe(chan<- *prometheus.Desc) {}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	stamp := func(d *prometheus.Desc, t time.Time, labels ...string) {
		if !t.IsZero() {
			gauge(d, float64(t.UnixNano())/1e9, labels...)
		}
	}
	seconds := func(d *prometheus.Desc, s string, labels ...string) {
		if v, err := time.ParseDuration(s); err == nil {
			gauge(d, v.Seconds(), labels...)
		}
	}
	for _, s := range st.Sources {
		stamp(descLastSuccess, s.Verified, s.Path)
		if s.LastSnapshot != nil {
			stamp(descLastSnapshot, s.LastSnapshot.Time, s.Path)
		}
		seconds(descFresh, s.FreshWithin, s.Path)
		gauge(descFailures, float64(s.Failures), s.Path)
		gauge(descPending, float64(s.PendingDirs), s.Path)
		gauge(descWatches, float64(s.Watches), s.Path)
		watching := 0.0
		if s.Watching {
			watching = 1
		}
		gauge(descWatching, watching, s.Path)
		counter(descEvents, float64(s.WatchEvents), s.Path)
		counter(descMissed, float64(s.MissedTotal), s.Path)
		gauge(descDeferred, float64(len(s.Deferred)), s.Path)
	}
	for _, j := range st.Jobs {
		stamp(descDumpSuccess, j.LastSuccess, j.Name)
		seconds(descDumpFresh, j.FreshWithin, j.Name)
		gauge(descDumpFailures, float64(j.Failures), j.Name)
	}
	stamp(descHeartbeat, st.LastHeartbeat)
	failing := 0.0
	if st.HeartbeatError != "" {
		failing = 1
	}
	gauge(descHeartbeatFailing, failing)
	stamp(descStarted, st.Started, st.Version)
}

// Package metrics exposes the agent's figures to Prometheus: what the agent
// reports in its status (read at each scrape), the figures of every
// snapshot and dump, and the requests to the store.
//
// Everything is registered in the Metrics' own registry: two agents in one
// process (tests) never share a counter.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/escrow-backup/escrow/agent"
	"github.com/escrow-backup/escrow/backup"
)

const ns = "escrow"

// Metrics collects one agent's figures.
type Metrics struct {
	reg *prometheus.Registry

	snapshotSeconds *prometheus.HistogramVec
	snapshots       *prometheus.CounterVec
	backupFailures  *prometheus.CounterVec
	bytesRead       *prometheus.CounterVec
	bytesAdded      *prometheus.CounterVec
	files           *prometheus.CounterVec
	dumpSeconds     *prometheus.HistogramVec
	dumpBytes       *prometheus.GaugeVec
	dumpFailures    *prometheus.CounterVec

	storeRequests *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	storeSeconds  *prometheus.HistogramVec
	storeUploaded prometheus.Counter
}

var _ agent.Observer = (*Metrics)(nil)

// New makes the metrics, with status (the agent's Status method, set
// later with Watch) read at every scrape.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	durations := []float64{0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600}
	m.snapshotSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "snapshot_duration_seconds",
		Help: "How long a backup of a source took, by kind (incremental or rescan).", Buckets: durations}, []string{"source", "kind"})
	m.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "snapshots_total",
		Help: "Snapshots saved per source and kind."}, []string{"source", "kind"})
	m.backupFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "backup_failures_total",
		Help: "Backups of a source that failed."}, []string{"source"})
	m.bytesRead = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "source_read_bytes_total",
		Help: "Bytes read from a source's files."}, []string{"source"})
	m.bytesAdded = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "source_added_bytes_total",
		Help: "New data a source's backups added to the repository, before compression."}, []string{"source"})
	m.files = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "source_files_changed_total",
		Help: "Files found new or changed by a source's backups."}, []string{"source", "change"})
	m.dumpSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "dump_duration_seconds",
		Help: "How long a database dump took.", Buckets: durations}, []string{"database"})
	m.dumpBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "dump_size_bytes",
		Help: "Size of the last good database dump."}, []string{"database"})
	m.dumpFailures = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dump_failures_total",
		Help: "Database dumps that failed."}, []string{"database"})
	m.storeRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "store_requests_total",
		Help: "Operations on the store (save, load, stat, list, remove), after retries."}, []string{"op"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "store_errors_total",
		Help: "Store operations that failed after retries."}, []string{"op"})
	m.storeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "store_request_duration_seconds",
		Help: "How long store operations took, retries included.", Buckets: prometheus.ExponentialBuckets(0.005, 4, 9)}, []string{"op"})
	m.storeUploaded = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "store_uploaded_bytes_total",
		Help: "Bytes saved to the store."})
	for _, c := range []prometheus.Collector{m.snapshotSeconds, m.snapshots, m.backupFailures, m.bytesRead, m.bytesAdded, m.files,
		m.dumpSeconds, m.dumpBytes, m.dumpFailures, m.storeRequests, m.storeErrors, m.storeSeconds, m.storeUploaded} {
		f(c)
	}
	return m
}

// Watch reads the agent's status at every scrape.
func (m *Metrics) Watch(status func() agent.Status) {
	m.reg.MustRegister(&statusCollector{status: status})
}

// Registry is where the metrics are registered.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Snapshot records a backup's figures.
func (m *Metrics) Snapshot(source, kind string, res *backup.Result, d time.Duration) {
	if res == nil {
		m.backupFailures.WithLabelValues(source).Inc()
		return
	}
	m.snapshotSeconds.WithLabelValues(source, kind).Observe(d.Seconds())
	m.bytesRead.WithLabelValues(source).Add(float64(res.BytesRead))
	if res.Unchanged {
		return
	}
	m.snapshots.WithLabelValues(source, kind).Inc()
	m.bytesAdded.WithLabelValues(source).Add(float64(res.Summary.DataAdded))
	m.files.WithLabelValues(source, "new").Add(float64(res.Summary.FilesNew))
	m.files.WithLabelValues(source, "changed").Add(float64(res.Summary.FilesChanged))
}

// Job records a dump's figures.
func (m *Metrics) Job(name string, bytes uint64, d time.Duration, failed bool) {
	if failed {
		m.dumpFailures.WithLabelValues(name).Inc()
		return
	}
	m.dumpSeconds.WithLabelValues(name).Observe(d.Seconds())
	m.dumpBytes.WithLabelValues(name).Set(float64(bytes))
}

// Serve answers GET /metrics on addr until ctx ends. It returns the
// address it listens on once the listener is open (an error if it cannot
// be), and serves in a goroutine that the returned wait function waits for
// after ctx ends.
func (m *Metrics) Serve(ctx context.Context, addr string, log *slog.Logger) (bound string, wait func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("metrics_listen %s: %w (choose a free port, or leave metrics_listen empty)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("the metrics endpoint stopped", "addr", addr, "err", err)
		}
	}()
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	return ln.Addr().String(), func() {
		<-ctx.Done()
		stop()
		<-done
	}, nil
}

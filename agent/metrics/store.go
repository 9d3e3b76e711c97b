package metrics

import (
	"context"
	"io"
	"time"

	"github.com/escrow-backup/escrow/remote"
)

// Backend counts and times the operations on b. Wrap the retrying backend
// with it, so each count is one operation as the repository sees it.
func (m *Metrics) Backend(b remote.Backend) remote.Backend { return &storeBackend{Backend: b, m: m} }

type storeBackend struct {
	remote.Backend
	m *Metrics
}

func (s *storeBackend) observe(op string, start time.Time, err error) {
	s.m.storeRequests.WithLabelValues(op).Inc()
	s.m.storeSeconds.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !remote.IsNotFound(err) {
		s.m.storeErrors.WithLabelValues(op).Inc()
	}
}

func (s *storeBackend) Save(ctx context.Context, h remote.Handle, data []byte) error {
	start := time.Now()
	err := s.Backend.Save(ctx, h, data)
	s.observe("save", start, err)
	if err == nil {
		s.m.storeUploaded.Add(float64(len(data)))
	}
	return err
}

func (s *storeBackend) Load(ctx context.Context, h remote.Handle, offset, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rd, err := s.Backend.Load(ctx, h, offset, length)
	s.observe("load", start, err)
	return rd, err
}

func (s *storeBackend) Stat(ctx context.Context, h remote.Handle) (remote.FileInfo, error) {
	start := time.Now()
	fi, err := s.Backend.Stat(ctx, h)
	s.observe("stat", start, err)
	return fi, err
}

func (s *storeBackend) List(ctx context.Context, t remote.FileType, fn func(remote.FileInfo) error) error {
	start := time.Now()
	err := s.Backend.List(ctx, t, fn)
	s.observe("list", start, err)
	return err
}

func (s *storeBackend) Remove(ctx context.Context, h remote.Handle) error {
	start := time.Now()
	err := s.Backend.Remove(ctx, h)
	s.observe("remove", start, err)
	return err
}

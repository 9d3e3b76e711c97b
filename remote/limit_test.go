package remote_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/escrow-backup/escrow/remote"
	"github.com/escrow-backup/escrow/remote/local"
)

// The limits are checked from below only: a slow machine may take longer,
// never shorter.
const (
	testRate  = 512 << 10
	testBytes = 768 << 10
	// testBytes at testRate is 1.5 s; the first burst (testRate/8) is free.
	minLimited = 1200 * time.Millisecond
)

func TestLimiterPacesUploadBodies(t *testing.T) {
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	client := &http.Client{Transport: remote.NewLimiter(testRate).RoundTripper(http.DefaultTransport)}
	body := bytes.Repeat([]byte("0123456789abcdef"), testBytes/16)

	start := time.Now()
	resp, err := client.Post(srv.URL, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d < minLimited {
		t.Errorf("%d bytes at %d B/s took %v, want at least %v", testBytes, testRate, d, minLimited)
	}
	if !bytes.Equal(got, body) {
		t.Errorf("server got %d bytes, want the %d sent", len(got), len(body))
	}

	// Responses are not limited.
	start = time.Now()
	if resp, err = client.Get(srv.URL); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("a request without a body took %v", d)
	}
}

func TestLimitPacesBackendSaves(t *testing.T) {
	ctx := context.Background()
	be, err := local.Create(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lb := remote.Limit(be, remote.NewLimiter(testRate))
	data := make([]byte, testBytes)
	start := time.Now()
	h := remote.Handle{Type: remote.PackFile, Name: "00" + string(bytes.Repeat([]byte("ab"), 31))}
	if err := lb.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < minLimited {
		t.Errorf("saving %d bytes at %d B/s took %v, want at least %v", testBytes, testRate, d, minLimited)
	}
	if remote.Limit(be, remote.NewLimiter(0)) != remote.Backend(be) {
		t.Error("a zero limit should leave the backend as it is")
	}

	// A cancelled context stops the wait.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	h.Name = "01" + h.Name[2:]
	if err := lb.Save(cctx, h, data); err == nil {
		t.Error("save went on after its context ended")
	}
}

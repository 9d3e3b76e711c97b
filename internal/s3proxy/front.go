package s3proxy

import (
	"testing"

	"github.com/escrow-backup/escrow/internal/testenv"
)

// Front starts a proxy in front of srv for the rest of the test and returns
// it with a copy of srv whose endpoint is the proxy, for the clients whose
// requests the test wants to see.
func Front(t testing.TB, srv testenv.Server) (*Proxy, testenv.Server) {
	t.Helper()
	scheme := "http://"
	if srv.Secure {
		scheme = "https://"
	}
	p, err := New(scheme + srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	via := srv
	via.Endpoint, via.Secure = p.Endpoint(), false
	return p, via
}

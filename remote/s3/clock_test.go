package s3

import (
	"testing"
	"time"
)

func TestClockSkewDescribed(t *testing.T) {
	for _, tc := range []struct {
		skew time.Duration
		want string
	}{
		{2*time.Hour + time.Second, "this computer's clock is about 2h0m ahead of the server's"},
		{-(59*time.Minute + 59*time.Second), "this computer's clock is about 1h0m behind the server's"},
		{-20 * time.Minute, "this computer's clock is about 20m behind the server's"},
		{40 * time.Second, "this computer's clock is about 40s ahead of the server's"},
	} {
		c := &clockWatch{}
		c.skew.Store(int64(tc.skew))
		c.seen.Store(true)
		if got := c.describe(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.skew, got, tc.want)
		}
	}
	if got := (&clockWatch{}).describe(); got != "" {
		t.Errorf("nothing seen: %q", got)
	}
}

package s3

import (
	"strings"
	"testing"
)

func TestParseRetention(t *testing.T) {
	for _, tc := range []struct {
		period, mode string
		want         Retention
		err          string
	}{
		{"30d", "compliance", Retention{Compliance, 30}, ""},
		{"1y", "GOVERNANCE", Retention{Governance, 365}, ""},
		{"100y", "governance", Retention{Governance, 36500}, ""},
		{"101y", "governance", Retention{}, "between 1d and 100y"},
		{"0d", "compliance", Retention{}, "between 1d and 100y"},
		{"30", "compliance", Retention{}, "give days or years"},
		{"30h", "compliance", Retention{}, "give days or years"},
		{"-3d", "compliance", Retention{}, "whole number"},
		{"30d", "legal", Retention{}, "use compliance or governance"},
	} {
		got, err := ParseRetention(tc.period, tc.mode)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %s: %v, want an error with %q", tc.period, tc.mode, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %s: %+v %v, want %+v", tc.period, tc.mode, got, err, tc.want)
		}
	}
	if s := (Retention{Compliance, 30}).String(); s != "30 days in compliance mode" {
		t.Errorf("String: %q", s)
	}
}

package config

import "testing"

func TestMetricsAddress(t *testing.T) {
	for in, want := range map[string]string{
		"":             "",
		":9310":        "127.0.0.1:9310",
		"0.0.0.0:9310": "0.0.0.0:9310",
		"[::1]:9310":   "[::1]:9310",
	} {
		if got := (&Config{MetricsListen: in}).MetricsAddress(); got != want {
			t.Errorf("MetricsAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

package durationtext

import (
	"testing"
	"time"
)

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                          "0s",
		250 * time.Millisecond:     "250ms",
		30 * time.Second:           "30s",
		90 * time.Second:           "1m30s",
		5 * time.Minute:            "5m",
		time.Hour:                  "1h",
		time.Hour + 30*time.Minute: "1h30m",
		time.Hour + 30*time.Second: "1h0m30s",
		24 * time.Hour:             "24h",
		-5 * time.Minute:           "-5m",
	} {
		if got := Short(d); got != want {
			t.Errorf("Short(%v) = %q, want %q", d, got, want)
		}
	}
}

package main

import (
	"testing"
	"time"
)

func TestRateLimitBoundCountsListPagesAndKeyReads(t *testing.T) {
	for _, tc := range []struct {
		sites, rate int
		want        time.Duration
	}{
		{5000, 50, 101 * time.Second}, // 5,000 key reads and 50 list pages
		{1, 50, 40 * time.Millisecond},
		{101, 1, 103 * time.Second},
	} {
		if got := rateLimitBound(tc.sites, tc.rate); got != tc.want {
			t.Errorf("%d sites at %d/s: %s, want %s", tc.sites, tc.rate, got, tc.want)
		}
	}
}

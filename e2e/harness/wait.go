package harness

import (
	"context"
	"testing"
	"time"
)

// WaitWithin polls cond every interval until it holds and returns how long
// that took; after timeout it fails the test with what it waited for and
// cond's last description of the state.
func WaitWithin(t testing.TB, timeout, interval time.Duration, what string, cond func() (ok bool, last string)) time.Duration {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return time.Since(began)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting %s for %s: %v (last: %s)", timeout, what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

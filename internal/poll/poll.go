// Package poll owns the tests' wait for a state nothing announces (a file's
// content, a status answer, a unit's state): it asks again every interval
// until the state holds, and when the time is up fails the test with what
// it waited for and the last state it saw.
//
// It holds no state of its own; a test that can be told of a change (an
// event, a channel) waits for that instead.
package poll

import (
	"context"
	"testing"
	"time"
)

// Within polls cond every interval until it holds and returns how long
// that took; after timeout, or once the test has ended, it fails the test
// with what it waited for and cond's last description of the state.
func Within(t testing.TB, timeout, interval time.Duration, what string, cond func() (ok bool, last string)) time.Duration {
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

// Package runtest runs one of hostd's long-running pieces (a Run or Serve
// that works until its context ends) in the background for a test, and when
// the test ends stops it and checks that it returned in time and with the
// error it should.
//
// It knows nothing of what the piece does; the test's own checks say that.
package runtest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// UntilEnd starts run in a goroutine and returns at once. When the test
// ends (at its cleanup, so after cleanups registered later and before those
// registered earlier) it cancels run's context and fails the test unless run
// returns within stopWithin with an error that is want (errors.Is; a nil want
// means run must return nil).
func UntilEnd(t testing.TB, stopWithin time.Duration, want error, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !returned(err, want) {
				t.Errorf("returned %v once its context was cancelled, want %v", err, want)
			}
		case <-time.After(stopWithin):
			t.Errorf("did not return within %s once its context was cancelled", stopWithin)
		}
	})
}

func returned(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

// Package clocktest holds Clock, a time source a test sets by hand, for the
// hostd pieces that take a Now func (metrics' scrape-time gauges, status'
// ages and health).
//
// It has no timers: the tests of pieces that wait (rollout, report) have
// clocks of their own that also fire the waits.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a settable time source, safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock showing now.
func New(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the time the clock shows; pass it as a Now func.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set makes the clock show t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Package clocktest holds Clock, a time source a test moves by hand, for the
// pieces that take a Now func: the plugin backend's clock (overlaps, pacing,
// schedules) and hostd's metrics scrape-time gauges and status ages and
// health.
//
// It owns only the time shown; it has no timers and fires no waits: the tests
// of pieces that wait (hostd's rollout and report) have clocks of their own
// that also fire the waits.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a settable time source, safe for concurrent use. It moves only
// when told to.
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

// Add moves the clock forward by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Package clocktest holds Clock, a time source a test moves by hand: the
// plugin backend's clock (overlaps, pacing, schedules), hostd's metrics
// scrape-time gauges and status ages and health, and the waits of hostd's
// rollout and report (Until).
//
// A wait here is for a time, not a duration: it fires once the clock shows
// its deadline, however a test's moves interleave with the piece that
// reads the clock and then waits. Each wait is logged with the clock's
// latest reading, so a test can tell that the piece has looked at the
// clock since a move and started waiting, before it moves the clock again.
//
// Only tests import it: the code it stands in for takes its clock as a
// plain func() time.Time (and a wait function) and knows nothing of it.
package clocktest

import (
	"context"
	"sync"
	"time"
)

// Clock is a settable time source with waits, safe for concurrent use. It
// moves only when told to.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	read    time.Time // what Now last returned
	pending []pendingWait
	log     []Wait        // every wait begun, oldest first
	cursor  int           // how much of log WaitBegun has returned or passed over
	begun   chan struct{} // closed and replaced when a wait begins
}

// Wait is one call of Until: the time it waits for, and what Now last
// returned before it. For a piece that reads the clock and then waits, Read
// is the reading its wait was worked out from, provided the test itself
// does not read the clock meanwhile (a test uses the times it set).
type Wait struct {
	Read, Until time.Time
}

type pendingWait struct {
	until time.Time
	ch    chan time.Time
}

// New returns a Clock showing now. A Clock must be made with New.
func New(now time.Time) *Clock { return &Clock{now: now, read: now, begun: make(chan struct{})} }

// Now returns the time the clock shows; pass it as a Now func.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read = c.now
	return c.now
}

// Set makes the clock show t and fires the waits whose time has come.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(t)
}

// Add moves the clock forward by d and fires the waits whose time has come.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set(c.now.Add(d))
}

// set moves the clock to t and fires the waits due; c.mu is held.
func (c *Clock) set(t time.Time) {
	c.now = t
	kept := c.pending[:0]
	for _, w := range c.pending {
		if w.until.After(t) {
			kept = append(kept, w)
			continue
		}
		w.ch <- t
	}
	c.pending = kept
}

// Until returns a channel that receives the clock's time once the clock
// shows t or later: at once when it already does, else when Set or Add
// moves it there. Pass it as an Until func.
func (c *Clock) Until(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if t.After(c.now) {
		c.pending = append(c.pending, pendingWait{until: t, ch: ch})
	} else {
		ch <- c.now
	}
	c.log = append(c.log, Wait{Read: c.read, Until: t})
	close(c.begun)
	c.begun = make(chan struct{})
	return ch
}

// WaitBegun returns the first wait in the log, after those an earlier call
// returned or passed over, for which match holds (nil matches any); the
// waits before it are passed over. It blocks until such a wait begins, or
// returns ctx's error.
func (c *Clock) WaitBegun(ctx context.Context, match func(Wait) bool) (Wait, error) {
	for {
		c.mu.Lock()
		for c.cursor < len(c.log) {
			w := c.log[c.cursor]
			c.cursor++
			if match == nil || match(w) {
				c.mu.Unlock()
				return w, nil
			}
		}
		begun := c.begun
		c.mu.Unlock()
		select {
		case <-begun:
		case <-ctx.Done():
			return Wait{}, ctx.Err()
		}
	}
}

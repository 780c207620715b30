package rollout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// fakeClock is a clock tests move by hand. After records each wait so a test
// can tell when Run has looked at the clock again.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	waits   chan time.Time // the fake time at which Run started each wait
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, waits: make(chan time.Time, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
	} else {
		c.waiters = append(c.waiters, waiter{at: c.now.Add(d), ch: ch})
	}
	select {
	case c.waits <- c.now:
	default:
	}
	return ch
}

// Advance moves the clock to t and fires every wait that has run out.
func (c *fakeClock) Advance(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(t) {
			kept = append(kept, w)
			continue
		}
		w.ch <- t
	}
	c.waiters = kept
}

// waitForRunAt blocks until Run has started a wait at fake time t or later:
// it has looked at the schedule since the clock reached t.
func (c *fakeClock) waitForRunAt(ctx context.Context, t *testing.T, at time.Time) {
	t.Helper()
	for {
		select {
		case w := <-c.waits:
			if !w.Before(at) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("Run did not look at the clock after %s", at)
		}
	}
}

func TestSplayIsAddedOncePerBatchWithinBounds(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, r := range []float64{0, 0.25, 0.999} {
		clock := newFakeClock(start)
		rec := newRecorder()
		rnd := r
		ro := rollout.New(nil, nil, rec, rollout.Options{
			Debounce: 2 * time.Second, Splay: 10 * time.Minute,
			Now: clock.Now, After: clock.After, Rand: func() float64 { return rnd },
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ro.Submit(rollout.Change{Unit: "a.service", Destination: "/etc/a.conf"})
		first := rec.waitPending(t, ctx)
		want := start.Add(2*time.Second + time.Duration(r*float64(10*time.Minute)))
		if !first.Due.Equal(want) || first.Due.Sub(start) >= 2*time.Second+10*time.Minute {
			t.Fatalf("rand %v: due %s, want %s (within debounce + splay)", r, first.Due, want)
		}
		// A later change restarts the debounce but keeps the batch's splay.
		clock.Advance(start.Add(time.Second))
		ro.Submit(rollout.Change{Unit: "a.service", Destination: "/etc/a.conf"})
		if second := rec.waitPending(t, ctx); !second.Due.Equal(want.Add(time.Second)) {
			t.Fatalf("rand %v: second due %s, want %s", r, second.Due, want.Add(time.Second))
		}
		cancel()
	}
}

func TestMaintenanceWindowDefersTheRestart(t *testing.T) {
	clock := newFakeClock(time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC))
	window := &rollout.Window{Start: 2 * time.Hour, End: 4 * time.Hour, Location: time.UTC}
	h := newHost(t, "exit", rollout.Options{Debounce: 2 * time.Second, Window: window, Now: clock.Now, After: clock.After})

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	opens := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	if p := h.events.waitPending(t, h.ctx); !p.Due.Equal(opens) {
		t.Fatalf("pending restart due %s, want the window's opening %s", p.Due, opens)
	}

	// Run sleeps until the opening; make it look at the schedule a second
	// before, and wait until it has.
	justBefore := opens.Add(-time.Second)
	clock.Advance(justBefore)
	h.rollout.Poke()
	clock.waitForRunAt(h.ctx, t, justBefore)
	if n := h.rollout.BatchesStarted(); n != 0 {
		t.Fatalf("restart started before the window opened")
	}

	clock.Advance(opens)
	if r := h.events.waitRestart(t, h.ctx); r.Result != "done" || !r.Time.Equal(opens) {
		t.Fatalf("restart in the window: %+v", r)
	}
	h.waitStarts(2)
}

// advanceOnceRunWaits moves the clock to due once Run has started waiting
// for the retry. Advancing earlier races Run: it computes its wait from the
// clock before the move and registers it after, then waits past due.
func advanceOnceRunWaits(t *testing.T, ctx context.Context, clock *fakeClock, due time.Time) {
	t.Helper()
	clock.waitForRunAt(ctx, t, clock.Now())
	clock.Advance(due)
}

func TestRestartOfAnUnknownUnitIsRetriedWithBackoff(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := newFakeClock(start)
	h := newHost(t, "exit", rollout.Options{RetryInterval: time.Minute, MaxRetry: 3 * time.Minute, Now: clock.Now, After: clock.After})

	// The agent's package is not installed yet: its unit is unknown.
	missing := rollout.Change{Unit: "later.service", Destination: h.dir + "/later.conf"}
	h.rollout.Submit(missing)
	h.events.waitPending(t, h.ctx)
	var due time.Time
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		if i > 0 {
			advanceOnceRunWaits(t, h.ctx, clock, due)
		}
		r := h.events.waitRestart(t, h.ctx)
		due = clock.Now().Add(wait)
		if r.Result != rollout.ResultError || !strings.Contains(r.Err, "no such unit") || !strings.Contains(r.Err, due.Format(time.RFC3339)) {
			t.Fatalf("attempt %d: %+v, want an error retried at %s", i+1, r, due)
		}
		if p := h.events.waitPending(t, h.ctx); !p.Due.Equal(due) || p.Unit != "later.service" {
			t.Fatalf("attempt %d: pending after the failure: %+v, want due %s", i+1, p, due)
		}
	}

	// Once the unit exists, the next retry restarts it.
	if err := h.m.InstallUnit(h.ctx, "later.service", "[Service]\nExecStart=/bin/sleep infinity\n"); err != nil {
		t.Fatal(err)
	}
	advanceOnceRunWaits(t, h.ctx, clock, due)
	r := h.events.waitRestart(t, h.ctx)
	if r.Unit != "later.service" || r.Result != "done" {
		t.Fatalf("restart once the unit exists: %+v", r)
	}
}

// unreachableSystemd accepts a restart, then never answers a state read, like
// a bus that went away in the middle of a health check.
type unreachableSystemd struct{ asked chan struct{} }

func (u *unreachableSystemd) Restart(context.Context, string) (restart.Result, error) {
	return restart.Result{Job: "done"}, nil
}

func (u *unreachableSystemd) UnitState(ctx context.Context, unit string) (restart.State, error) {
	select {
	case u.asked <- struct{}{}:
	default:
	}
	return restart.State{}, errors.New("connection closed")
}

func TestStopDuringAHealthCheckSystemdNoLongerAnswers(t *testing.T) {
	sd := &unreachableSystemd{asked: make(chan struct{}, 1)}
	restored := make(chan string, 1)
	restore := func(dest string, _ *write.Snapshot) error { restored <- dest; return nil }
	r := rollout.New(sd, restore, nil, rollout.Options{ActiveTimeout: time.Hour, WatchInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	r.Submit(rollout.Change{Unit: "agent.service", Destination: "/etc/agent.conf", Previous: &write.Snapshot{}})
	select {
	case <-sd.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the health check never asked for the unit's state")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waits for a health check systemd cannot answer (ActiveTimeout is an hour)")
	}
	select {
	case dest := <-restored:
		t.Fatalf("%s was rolled back although nothing showed the unit unhealthy", dest)
	default:
	}
}

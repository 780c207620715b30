package rollout_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
)

// waitForRunAt blocks until Run has started a wait worked out from a
// reading of the clock at at or later: it has looked at the schedule since
// the clock reached at. The tests do not read the clock themselves while
// Run may (they use the times they set), so the readings are Run's.
func waitForRunAt(ctx context.Context, t *testing.T, clock *clocktest.Clock, at time.Time) {
	t.Helper()
	if _, err := clock.WaitBegun(ctx, func(w clocktest.Wait) bool { return !w.Read.Before(at) }); err != nil {
		t.Fatalf("Run did not look at the clock after %s", at)
	}
}

func TestSplayIsAddedOncePerBatchWithinBounds(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, r := range []float64{0, 0.25, 0.999} {
		clock := clocktest.New(start)
		rec := eventtest.New[event.Event]()
		rnd := r
		ro := rollout.New(rollout.Options{
			Sink:     rec,
			Debounce: 2 * time.Second, Splay: 10 * time.Minute,
			Clock: stage.Clock{Now: clock.Now, Rand: func() float64 { return rnd }, Until: clock.Until},
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ro.Submit(rollout.Change{Unit: "a.service", Destination: "/etc/a.conf"})
		first := eventtest.Take[event.Pending](t, ctx, rec)
		want := start.Add(2*time.Second + time.Duration(r*float64(10*time.Minute)))
		if !first.Due.Equal(want) || first.Due.Sub(start) >= 2*time.Second+10*time.Minute {
			t.Fatalf("rand %v: due %s, want %s (within debounce + splay)", r, first.Due, want)
		}
		// A later change restarts the debounce but keeps the batch's splay.
		clock.Set(start.Add(time.Second))
		ro.Submit(rollout.Change{Unit: "a.service", Destination: "/etc/a.conf"})
		if second := eventtest.Take[event.Pending](t, ctx, rec); !second.Due.Equal(want.Add(time.Second)) {
			t.Fatalf("rand %v: second due %s, want %s", r, second.Due, want.Add(time.Second))
		}
		cancel()
	}
}

func TestMaintenanceWindowDefersTheRestart(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 3, 1, 1, 0, 0, 0, time.UTC))
	window := &rollout.Window{Start: 2 * time.Hour, End: 4 * time.Hour, Location: time.UTC}
	h := newHost(t, "exit", rollout.Options{Debounce: 2 * time.Second, Window: window, Clock: stage.Clock{Now: clock.Now, Until: clock.Until}})

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	opens := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	if p := eventtest.Take[event.Pending](t, h.ctx, h.events); !p.Due.Equal(opens) {
		t.Fatalf("pending restart due %s, want the window's opening %s", p.Due, opens)
	}

	// Run sleeps until the opening; make it look at the schedule a second
	// before, and wait until it has.
	justBefore := opens.Add(-time.Second)
	clock.Set(justBefore)
	h.rollout.Poke()
	waitForRunAt(h.ctx, t, clock, justBefore)
	if n := h.rollout.BatchesStarted(); n != 0 {
		t.Fatalf("restart started before the window opened")
	}

	clock.Set(opens)
	if r := eventtest.Take[event.Restart](t, h.ctx, h.events); r.Result != event.ResultDone || !r.Time.Equal(opens) {
		t.Fatalf("restart in the window: %+v", r)
	}
	h.waitStarts(2)
}

// advanceOnceRunWaits moves the clock from now, where the test last set it,
// to due once Run has started waiting for the retry, so the retry shows that
// Run's own wait wakes it: moved earlier, the clock would let Run find the
// retry due the next time it looks.
func advanceOnceRunWaits(t *testing.T, ctx context.Context, clock *clocktest.Clock, now, due time.Time) {
	t.Helper()
	waitForRunAt(ctx, t, clock, now)
	clock.Set(due)
}

func TestRestartOfAnUnknownUnitIsRetriedWithBackoff(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(start)
	h := newHost(t, "exit", rollout.Options{RetryInterval: time.Minute, MaxRetry: 3 * time.Minute, Clock: stage.Clock{Now: clock.Now, Until: clock.Until}})

	// The agent's package is not installed yet: its unit is unknown.
	missing := rollout.Change{Unit: "later.service", Destination: h.dir + "/later.conf"}
	h.rollout.Submit(missing)
	eventtest.Take[event.Pending](t, h.ctx, h.events)
	now, due := start, start
	for i, wait := range []time.Duration{time.Minute, 2 * time.Minute, 3 * time.Minute, 3 * time.Minute} {
		if i > 0 {
			advanceOnceRunWaits(t, h.ctx, clock, now, due)
			now = due
		}
		r := eventtest.Take[event.Restart](t, h.ctx, h.events)
		due = now.Add(wait)
		if r.Result != event.ResultError || !strings.Contains(r.Err, "no such unit") || !strings.Contains(r.Err, due.Format(time.RFC3339)) {
			t.Fatalf("attempt %d: %+v, want an error retried at %s", i+1, r, due)
		}
		if p := eventtest.Take[event.Pending](t, h.ctx, h.events); !p.Due.Equal(due) || p.Unit != "later.service" {
			t.Fatalf("attempt %d: pending after the failure: %+v, want due %s", i+1, p, due)
		}
	}

	// Once the unit exists and runs, the next retry restarts it.
	if err := h.m.InstallUnit(h.ctx, "later.service", "[Service]\nExecStart=/bin/sleep infinity\n"); err != nil {
		t.Fatal(err)
	}
	if err := h.m.StartUnit(h.ctx, "later.service"); err != nil {
		t.Fatal(err)
	}
	advanceOnceRunWaits(t, h.ctx, clock, now, due)
	r := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if r.Unit != "later.service" || r.Result != event.ResultDone {
		t.Fatalf("restart once the unit exists: %+v", r)
	}
}

// unreachableSystemd shows a running unit and accepts its restart, then
// never answers a state read, like a bus that went away in the middle of a
// health check.
type unreachableSystemd struct {
	asked     chan struct{}
	restarted atomic.Bool
}

func (u *unreachableSystemd) TryRestart(context.Context, string) (restart.Result, error) {
	u.restarted.Store(true)
	return restart.Result{Job: event.ResultDone}, nil
}

func (u *unreachableSystemd) Restart(ctx context.Context, unit string) (restart.Result, error) {
	return u.TryRestart(ctx, unit)
}

func (u *unreachableSystemd) UnitState(ctx context.Context, unit string) (restart.State, error) {
	if !u.restarted.Load() {
		return restart.State{ActiveState: "active", SubState: "running", MainPID: 1}, nil
	}
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
	r := rollout.New(rollout.Options{Restarter: sd, Restore: restore, ActiveTimeout: time.Hour, WatchInterval: 10 * time.Millisecond})
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

// A change made outside the maintenance window: each host restarts at its
// own moment inside the window, not all at its opening.
func TestSplayIsSpreadInsideTheWindow(t *testing.T) {
	window := &rollout.Window{Start: 2 * time.Hour, End: 4 * time.Hour, Location: time.UTC}
	at := func(h, m, s int) time.Time { return time.Date(2026, 3, 2, h, m, s, 0, time.UTC) }
	for _, tc := range []struct {
		name  string
		now   time.Time
		splay time.Duration
		rand  float64
		want  time.Time
	}{
		{"noon, first host", at(12, 0, 0).AddDate(0, 0, -1), 30 * time.Minute, 0, at(2, 0, 0)},
		{"noon, middle host", at(12, 0, 0).AddDate(0, 0, -1), 30 * time.Minute, 0.5, at(2, 15, 0)},
		{"noon, last host", at(12, 0, 0).AddDate(0, 0, -1), 30 * time.Minute, 0.99, at(2, 29, 42)},
		// A splay longer than the window is spread over the window.
		{"splay longer than the window", at(12, 0, 0).AddDate(0, 0, -1), 3 * time.Hour, 0.5, at(3, 0, 0)},
		{"splay longer than the window, last host", at(12, 0, 0).AddDate(0, 0, -1), 3 * time.Hour, 0.99, at(3, 58, 48)},
		// Inside the window, near its end: the splay shrinks to the 10m left
		// after the debounce.
		{"inside the window", at(3, 49, 58), 30 * time.Minute, 0.5, at(3, 55, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := clocktest.New(tc.now)
			rec := eventtest.New[event.Event]()
			ro := rollout.New(rollout.Options{
				Sink:     rec,
				Debounce: 2 * time.Second, Splay: tc.splay, Window: window,
				Clock: stage.Clock{Now: clock.Now, Rand: func() float64 { return tc.rand }, Until: clock.Until},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ro.Submit(rollout.Change{Unit: "a.service", Destination: "/etc/a.conf"})
			if p := eventtest.Take[event.Pending](t, ctx, rec); !p.Due.Equal(tc.want) {
				t.Fatalf("due %s, want %s", p.Due, tc.want)
			}
		})
	}
}

// refusingSystemd does not know the unit: every restart is refused before a
// job is queued.
type refusingSystemd struct{}

func (refusingSystemd) TryRestart(context.Context, string) (restart.Result, error) {
	return restart.Result{}, restart.ErrNoSuchUnit
}

func (refusingSystemd) Restart(context.Context, string) (restart.Result, error) {
	return restart.Result{}, restart.ErrNoSuchUnit
}

func (refusingSystemd) UnitState(context.Context, string) (restart.State, error) {
	return restart.State{}, restart.ErrNoSuchUnit
}

// A retry that falls after the window closed waits for the next window and
// keeps the host's splay there too.
func TestRetryKeepsTheSplayInsideTheWindow(t *testing.T) {
	start := time.Date(2026, 3, 1, 3, 59, 0, 0, time.UTC)
	clock := clocktest.New(start)
	rec := eventtest.New[event.Event]()
	window := &rollout.Window{Start: 2 * time.Hour, End: 4 * time.Hour, Location: time.UTC}
	ro := rollout.New(rollout.Options{
		Restarter: refusingSystemd{}, Sink: rec,
		Splay: 30 * time.Minute, Window: window, RetryInterval: 5 * time.Minute,
		Clock: stage.Clock{Now: clock.Now, Rand: func() float64 { return 0.5 }, Until: clock.Until},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runtest.UntilEnd(t, 10*time.Second, nil, ro.Run)

	ro.Submit(rollout.Change{Unit: "a.service", Destination: "/etc/a.conf"})
	first := eventtest.Take[event.Pending](t, ctx, rec)
	if want := start.Add(30 * time.Second); !first.Due.Equal(want) { // half of the minute left
		t.Fatalf("due %s, want %s", first.Due, want)
	}
	advanceOnceRunWaits(t, ctx, clock, start, first.Due)
	if r := eventtest.Take[event.Restart](t, ctx, rec); r.Result != event.ResultError {
		t.Fatalf("restart of an unknown unit: %+v", r)
	}
	if retry, want := eventtest.Take[event.Pending](t, ctx, rec), time.Date(2026, 3, 2, 2, 15, 0, 0, time.UTC); !retry.Due.Equal(want) {
		t.Fatalf("retry due %s, want %s (next window plus the splay)", retry.Due, want)
	}
}

// A reload hands a batch waiting for its retry to the next Rollout: the
// retry keeps its backoff there, it does not run at once.
func TestAHandOverKeepsTheRetryBackoff(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(start)
	rec := eventtest.New[event.Event]()
	opts := rollout.Options{
		Restarter: refusingSystemd{}, Sink: rec,
		Debounce: time.Second, RetryInterval: 5 * time.Minute, Clock: stage.Clock{Now: clock.Now, Until: clock.Until},
	}
	ro := rollout.New(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runtest.UntilEnd(t, 10*time.Second, nil, ro.Run)

	ro.Submit(rollout.Change{Unit: "a.service", Destination: "/etc/a.conf"})
	first := eventtest.Take[event.Pending](t, ctx, rec)
	advanceOnceRunWaits(t, ctx, clock, start, first.Due)
	if r := eventtest.Take[event.Restart](t, ctx, rec); r.Result != event.ResultError {
		t.Fatalf("restart of an unknown unit: %+v", r)
	}
	retry := eventtest.Take[event.Pending](t, ctx, rec)
	if want := first.Due.Add(5 * time.Minute); !retry.Due.Equal(want) {
		t.Fatalf("retry due %s, want %s", retry.Due, want)
	}

	ro.HandOver(rollout.New(opts))
	if moved := eventtest.Take[event.Pending](t, ctx, rec); !moved.Due.Equal(retry.Due) {
		t.Fatalf("after the hand-over the retry is due %s, want %s (its backoff)", moved.Due, retry.Due)
	}
}

// holdWindow is how long the sink holds a batch's announcement back while
// the test watches whether Run starts the batch meanwhile. It bounds a check
// that nothing happens; nothing waits on it to happen.
const holdWindow = time.Second

// askingSystemd is scriptedSystemd that says when a restart is asked for.
type askingSystemd struct {
	*scriptedSystemd
	asked chan struct{}
}

func (s askingSystemd) TryRestart(ctx context.Context, unit string) (restart.Result, error) {
	select {
	case s.asked <- struct{}{}:
	default:
	}
	return s.scriptedSystemd.TryRestart(ctx, unit)
}

// heldAnnouncement holds the first Pending in Publish for holdWindow, or
// until a restart is asked for meanwhile, and says which came first; every
// event then goes on to events.
type heldAnnouncement struct {
	asked    <-chan struct{}
	entered  chan struct{} // closed once the first Pending is being held
	overtook chan bool     // true: a restart was asked for while it was held
	events   *eventtest.Recorder[event.Event]
	once     sync.Once
}

func (h *heldAnnouncement) Publish(e event.Event) {
	if _, ok := e.(event.Pending); ok {
		h.once.Do(func() {
			close(h.entered)
			select {
			case <-h.asked:
				h.overtook <- true
			case <-time.After(holdWindow):
				h.overtook <- false
			}
		})
	}
	h.events.Publish(e)
}

// Submit announces a batch (event.Pending) before Run can start it: status
// and the metrics keep the last word on a unit, so an announcement that
// arrives after what it announced leaves them wrong. Run is
// started while Submit is still announcing a batch that is due at once: it
// must not restart the unit before the announcement is out, or the Pending
// reaches status after the restart it announced and the unit shows as
// pending for a restart that already ran.
func TestSubmitAnnouncesABatchBeforeRunCanStartIt(t *testing.T) {
	sd := askingSystemd{scriptedSystemd: &scriptedSystemd{job: event.ResultDone}, asked: make(chan struct{}, 1)}
	sink := &heldAnnouncement{asked: sd.asked, entered: make(chan struct{}), overtook: make(chan bool, 1), events: eventtest.New[event.Event]()}
	r := rollout.New(rollout.Options{
		Restarter: sd, Sink: sink,
		ActiveTimeout: 5 * time.Second, StableFor: 10 * time.Millisecond, WatchInterval: 10 * time.Millisecond,
	})
	go r.Submit(rollout.Change{Unit: "agent.service", Destination: "/etc/agent.conf"})
	<-sink.entered
	runtest.UntilEnd(t, 10*time.Second, nil, r.Run)
	if <-sink.overtook {
		t.Fatal("Run restarted agent.service while Submit was still announcing the batch: its Pending would reach status after the restart")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eventtest.Take[event.Pending](t, ctx, sink.events)
	if done := eventtest.Take[event.Restart](t, ctx, sink.events); done.Result != event.ResultDone {
		t.Fatalf("the restart after the announcement: %+v, want done", done)
	}
}

package report

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
)

const waitFor = 10 * time.Second

// awaitWait waits until Run waits until the time until.
func awaitWait(t *testing.T, clock *clocktest.Clock, until time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := clock.WaitBegun(ctx, func(w clocktest.Wait) bool { return w.Until.Equal(until) }); err != nil {
		t.Fatalf("Run never waited until %s", until)
	}
}

// written is one report a fakeWriter took.
type written struct {
	path string
	data map[string]any
}

// fakeWriter records each write and answers with the next of its errors
// (nil once they are used up).
type fakeWriter struct {
	mu     sync.Mutex
	errs   []error
	writes chan written
	block  chan struct{} // when set, each write waits for it
}

func newFakeWriter(errs ...error) *fakeWriter {
	return &fakeWriter{errs: errs, writes: make(chan written, 100)}
}

func (w *fakeWriter) Write(ctx context.Context, path string, data map[string]any) error {
	if w.block != nil {
		select {
		case <-w.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	var err error
	if len(w.errs) > 0 {
		err, w.errs = w.errs[0], w.errs[1:]
	}
	w.mu.Unlock()
	w.writes <- written{path, data}
	return err
}

func (w *fakeWriter) next(t *testing.T) written {
	t.Helper()
	select {
	case wr := <-w.writes:
		return wr
	case <-time.After(waitFor):
		t.Fatal("no report written")
		return written{}
	}
}

// after moves clock on by d once Run waits that long, and returns the write
// that follows.
func (w *fakeWriter) after(t *testing.T, clock *clocktest.Clock, d time.Duration) written {
	t.Helper()
	awaitWait(t, clock, clock.Now().Add(d))
	clock.Add(d)
	return w.next(t)
}

// reporter runs a Reporter until the test ends.
func reporter(t *testing.T, clock *clocktest.Clock, settings Settings, dir string) (*Reporter, *eventtest.Recorder[event.Event]) {
	t.Helper()
	events := eventtest.New[event.Event]()
	r := New(Options{Settings: settings, StateDir: dir, Reporting: stage.Reporting{Sink: events}, Clock: stage.Clock{Now: clock.Now, Rand: func() float64 { return 0.5 }, Until: clock.Until}})
	runtest.UntilEnd(t, waitFor, nil, r.Run)
	return r, events
}

var enabled = Settings{Enabled: true, Host: "web-1", Interval: 10 * time.Minute, Version: "1.2.3"}

func reportOf(ok, heartbeat bool) func(event.Event) bool {
	return func(e event.Event) bool {
		r, isReport := e.(event.Report)
		return isReport && r.OK == ok && r.Heartbeat == heartbeat
	}
}

func TestAReportIsSentAtOnceAndRepeatedAsAHeartbeat(t *testing.T) {
	clock := clocktest.New(t0)
	r, events := reporter(t, clock, enabled, "")
	w := newFakeWriter()
	r.UseWriter(w)
	started := t0.Add(-time.Hour)
	r.Publish(rendered(agentConf, agentUnit, "d1", creds(www, "ak-1")))
	r.Publish(runs(agentUnit, on(agentConf, "d1", started)))

	got := w.next(t)
	if got.path != "sigsci/fleet/vault-user/sites/www/hosts/web-1" {
		t.Fatalf("path %s", got.path)
	}
	want := map[string]any{"access_key": "ak-1", "unit": agentUnit, "agent_started": "2026-12-01T09:00:00Z", "version": "1.2.3"}
	if len(got.data) != len(want) {
		t.Fatalf("data %v, want %v", got.data, want)
	}
	for k, v := range want {
		if got.data[k] != v {
			t.Fatalf("data %v, want %v", got.data, want)
		}
	}
	ev, _ := events.WaitFor(t, 0, waitFor, "the report's event", reportOf(true, false))
	if rep := ev.(event.Report); rep.Host != "web-1" || rep.Site != "www" || rep.AccessKey != "ak-1" || rep.Unit != agentUnit {
		t.Fatalf("report event %+v", rep)
	}
	keys, _ := events.WaitFor(t, 0, waitFor, "the agent keys", func(e event.Event) bool { _, ok := e.(event.AgentKeys); return ok })
	if k := keys.(event.AgentKeys).Keys; len(k) != 1 || k[0] != (event.AgentKey{Unit: agentUnit, Mount: "sigsci", Role: "vault-user", Site: "www", AccessKey: "ak-1"}) {
		t.Fatalf("agent keys %+v", k)
	}

	// Rand 0.5: the interval itself.
	if again := w.after(t, clock, 10*time.Minute); again.data["access_key"] != "ak-1" {
		t.Fatalf("heartbeat %v", again.data)
	}
	events.WaitFor(t, 0, waitFor, "the heartbeat's event", reportOf(true, true))
}

func TestAFailedReportIsRetriedWithBackoff(t *testing.T) {
	clock := clocktest.New(t0)
	r, events := reporter(t, clock, enabled, "")
	refused := errors.New("vault answered 403: permission denied")
	w := newFakeWriter(refused, refused)
	r.UseWriter(w)
	r.Publish(rendered("/etc/keys.env", "", "d1", creds(www, "ak-1")))

	w.next(t)
	ev, next := events.WaitFor(t, 0, waitFor, "the failed report", reportOf(false, false))
	if ev.(event.Report).Err != refused.Error() {
		t.Fatalf("report event %+v", ev)
	}
	// Backoff from 5s at the middle of its upper half (Rand 0.5): 3.75s,
	// then 7.5s.
	w.after(t, clock, 3750*time.Millisecond)
	_, next = events.WaitFor(t, next, waitFor, "the second failure", reportOf(false, false))
	w.after(t, clock, 7500*time.Millisecond)
	events.WaitFor(t, next, waitFor, "the retry that gets through", reportOf(true, false))
	awaitWait(t, clock, clock.Now().Add(10*time.Minute)) // the heartbeat after the success
}

func TestAReportThatHangsDelaysNoEvent(t *testing.T) {
	clock := clocktest.New(t0)
	r, _ := reporter(t, clock, enabled, "")
	w := newFakeWriter()
	w.block = make(chan struct{})
	r.UseWriter(w)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Publish(rendered(agentConf, agentUnit, "d1", creds(www, "ak-1")))
		r.Publish(runs(agentUnit, on(agentConf, "d1", t0)))
		r.Publish(rendered(agentConf, agentUnit, "d2", creds(www, "ak-2")))
		r.Publish(runs(agentUnit, on(agentConf, "d2", t0.Add(time.Minute))))
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Publish blocked while a report hangs")
	}
	close(w.block)
	// The hung report was of ak-1; the newer one follows at once.
	for {
		if got := w.next(t); got.data["access_key"] == "ak-2" {
			return
		}
	}
}

func TestNothingIsReportedWhenReportsAreOff(t *testing.T) {
	clock := clocktest.New(t0)
	off := enabled
	off.Enabled = false
	r, events := reporter(t, clock, off, "")
	w := newFakeWriter()
	r.UseWriter(w)
	r.Publish(rendered("/etc/keys.env", "", "d1", creds(www, "ak-1")))
	// The agent keys are still published (metrics), but nothing is written.
	events.WaitFor(t, 0, waitFor, "the agent keys", func(e event.Event) bool { _, ok := e.(event.AgentKeys); return ok })
	select {
	case wr := <-w.writes:
		t.Fatalf("reported %v with reports off", wr)
	default:
	}
	r.Configure(enabled)
	if got := w.next(t); got.data["access_key"] != "ak-1" {
		t.Fatalf("after enabling: %v", got.data)
	}
	renamed := enabled
	renamed.Host = "web-1.example"
	r.Configure(renamed)
	if got := w.next(t); got.path != "sigsci/fleet/vault-user/sites/www/hosts/web-1.example" {
		t.Fatalf("after renaming the host: %s", got.path)
	}
}

func TestARestartedHostdReportsTheKeyOfContentItRenderedBefore(t *testing.T) {
	dir := t.TempDir()
	first := New(Options{Settings: enabled, StateDir: dir})
	first.Publish(rendered(agentConf, agentUnit, "d1", creds(www, "ak-1")))
	first.Publish(runs(agentUnit, on(agentConf, "d1", t0)))
	first.Publish(rendered(agentConf, agentUnit, "d2", creds(www, "ak-2")))
	info, err := os.Stat(filepath.Join(dir, StateFile))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v", info, err)
	}

	// hostd restarts before the unit's restart: the unit still runs d1,
	// which the tracker knows; the new hostd renders d2 again.
	clock := clocktest.New(t0)
	second, _ := reporter(t, clock, enabled, dir)
	w := newFakeWriter()
	second.UseWriter(w)
	second.Publish(runs(agentUnit, on(agentConf, "d1", t0)))
	second.Publish(rendered(agentConf, agentUnit, "d2", creds(www, "ak-2")))
	if got := w.next(t); got.data["access_key"] != "ak-1" {
		t.Fatalf("reported %v, want ak-1: the unit runs the content of the earlier hostd", got.data)
	}
}

func TestRunReturnsWhenStoppedDuringAHungReport(t *testing.T) {
	clock := clocktest.New(t0)
	r := New(Options{Settings: enabled, Clock: stage.Clock{Now: clock.Now, Until: clock.Until}})
	w := newFakeWriter()
	w.block = make(chan struct{}) // never closed: Vault does not answer
	r.UseWriter(w)
	r.Publish(rendered("/etc/keys.env", "", "d1", creds(www, "ak-1")))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Run did not return when stopped with a report due")
	}
}

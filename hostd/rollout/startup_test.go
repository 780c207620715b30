package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// These tests play what happens across a restart of hostd: one Rollout (one
// hostd) leaves the agent and the files in some state, and a new Rollout
// with a new Tracker on the same state directory (the next hostd) finds
// them with Reconcile.

// instance is one Rollout running on the test host, as one hostd would.
type instance struct {
	rollout *rollout.Rollout
	events  *eventtest.Recorder[event.Event]
	stop    func() // cancels Run and waits (within the test's deadline) until it returns
}

// start runs a new Rollout on h's systemd with a Tracker on stateDir.
func (h *host) start(stateDir string, opts rollout.Options) *instance {
	h.t.Helper()
	if opts.WatchInterval == 0 {
		opts.WatchInterval = watch
	}
	if opts.ActiveTimeout == 0 {
		opts.ActiveTimeout = 5 * time.Second
	}
	opts.Running = running.New(stateDir, slog.New(slog.DiscardHandler))
	in := &instance{events: eventtest.New[event.Event]()}
	opts.Restarter, opts.Restore, opts.Sink = h.conn, write.Put, in.events
	in.rollout = rollout.New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := in.rollout.Run(ctx); err != nil {
			h.t.Errorf("Run: %v", err)
		}
	}()
	in.stop = func() {
		h.t.Helper()
		cancel()
		select {
		case <-done:
		case <-h.ctx.Done():
			h.t.Fatal("Run did not return after its context ended: it waits for the restart under way")
		}
	}
	h.t.Cleanup(in.stop)
	return in
}

func (h *host) watched() []rollout.Watched {
	return []rollout.Watched{{Unit: h.unit, Destination: filepath.Join(h.dir, "agent.conf"), Backup: true}}
}

// gate makes the agent's next start wait (ExecStartPre) until open is
// called: a restart that is slow for as long as the test wants.
func (h *host) gate() (open func()) {
	h.t.Helper()
	path := filepath.Join(h.dir, "gate")
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	return func() {
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
}

// gatedAgent is agentUnit("exit") whose start waits for the file "gate".
func gatedAgent(dir string) string {
	return agentUnit(dir, "exit") + "ExecStartPre=/bin/sh -c 'while [ ! -e \"$$CONF_DIR/gate\" ]; do sleep 0.02; done'\n"
}

// waitState polls the agent's state until ok holds, within the test's deadline.
func (h *host) waitState(what string, ok func(restart.State) bool) {
	h.t.Helper()
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for !ok(h.state()) {
		select {
		case <-ticker.C:
		case <-h.ctx.Done():
			h.t.Fatalf("the agent never was %s: %+v", what, h.state())
		}
	}
}

// waitPastModTime waits until a process started from now on is told apart
// from path's content: later than its modification time by more than the
// resolution of that time.
func (h *host) waitPastModTime(path string) {
	h.t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		h.t.Fatal(err)
	}
	select {
	case <-time.After(time.Until(info.ModTime().Add(running.ModTimeResolution))):
	case <-h.ctx.Done():
		h.t.Fatal("the test's deadline passed")
	}
}

// laterWindow is a one-minute maintenance window hours from now.
func laterWindow() *rollout.Window {
	start := time.Duration(time.Now().UTC().Add(3*time.Hour).Hour()) * time.Hour
	return &rollout.Window{Start: start, End: start + time.Minute, Location: time.UTC}
}

// A hostd stopped (or killed) after writing the agent's file and before its
// restart: the next one sees that the agent's process is older than the file
// and restarts it.
func TestAUnitStartedBeforeItsFileIsRestartedByTheNextHostd(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	state := t.TempDir()
	first := h.start(state, rollout.Options{Window: laterWindow()})
	first.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	eventtest.Take[event.Pending](t, h.ctx, first.events)
	first.stop() // the restart waits for a window: it is dropped

	next := h.start(state, rollout.Options{})
	next.rollout.Reconcile(h.ctx, h.watched())
	if r := eventtest.Take[event.Running](t, h.ctx, next.events); len(r.Files) != 1 || r.Files[0].Digest != "" {
		t.Fatalf("before the restart, the agent runs on content older than its file: %+v", r)
	}
	if p := eventtest.Take[event.Pending](t, h.ctx, next.events); p.Unit != h.unit {
		t.Fatalf("pending: %+v", p)
	}
	if r := eventtest.Take[event.Restart](t, h.ctx, next.events); r.Result != event.ResultDone {
		t.Fatalf("the owed restart: %+v", r)
	}
	h.waitStarts(2)
	want := running.Digest([]byte("good 2\n"))
	if r := eventtest.Take[event.Running](t, h.ctx, next.events); len(r.Files) != 1 || r.Files[0].Digest != want || r.Files[0].Since.IsZero() {
		t.Fatalf("after the restart the agent runs on %+v, want digest %s", r.Files, want)
	}
}

// The negative: the agent started after its file got its content (an
// operator restarted it, or hostd did before it stopped): nothing is owed.
func TestAUnitStartedAfterItsFileIsLeftAlone(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	change := h.writeConf("agent.conf", "good 2")
	if err := h.m.StopUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}
	h.waitPastModTime(change.Destination)
	if err := h.m.StartUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}
	h.waitStarts(2)

	next := h.start(t.TempDir(), rollout.Options{})
	next.rollout.Reconcile(h.ctx, h.watched())
	want := running.Digest([]byte("good 2\n"))
	if r := eventtest.Take[event.Running](t, h.ctx, next.events); len(r.Files) != 1 || r.Files[0].Digest != want {
		t.Fatalf("the agent runs on %+v, want digest %s", r.Files, want)
	}
	// Reconcile schedules what it finds owed before it returns.
	checkNoPending(t, next.events)
}

// checkNoPending fails the test if a restart was scheduled.
func checkNoPending(t *testing.T, r *eventtest.Recorder[event.Event]) {
	t.Helper()
	for _, e := range r.Untaken() {
		if _, ok := e.(event.Pending); ok {
			t.Fatalf("a restart was scheduled: %+v", e)
		}
	}
}

// hostd stopped while the health check of a restart onto content the agent
// does not survive was still running: it did not wait, and did not roll
// back blindly. The next hostd checks the agent at once and rolls back.
func TestARestartLeftUnfinishedByAStopIsCheckedAndRolledBackAtTheNextStart(t *testing.T) {
	h := newHost(t, "crashloop", rollout.Options{})
	state := t.TempDir()
	first := h.start(state, rollout.Options{ActiveTimeout: time.Hour, StopGrace: 100 * time.Millisecond, WatchInterval: 500 * time.Millisecond})
	first.rollout.Submit(h.writeConf("agent.conf", "bad key"))
	h.waitStarts(2) // the restart onto the bad key was issued
	first.stop()    // returns after the grace, not after an hour
	if r := eventtest.Take[event.Restart](t, h.ctx, first.events); r.RolledBack || r.Result == event.ResultRolledBack {
		t.Fatalf("the stop must not roll back without a verdict: %+v", r)
	}
	if got := h.readConf("agent.conf"); got != "bad key" {
		t.Fatalf("agent.conf after the stop = %q", got)
	}

	next := h.start(state, rollout.Options{WatchInterval: 500 * time.Millisecond, ActiveTimeout: 4 * time.Second})
	next.rollout.Reconcile(h.ctx, h.watched())
	checked := eventtest.Take[event.Restart](t, h.ctx, next.events)
	if checked.Err == "" || checked.RolledBack {
		t.Fatalf("the check of the unfinished restart: %+v", checked)
	}
	if back := eventtest.Take[event.Restart](t, h.ctx, next.events); back.Result != event.ResultRolledBack {
		t.Fatalf("rollback at the next start: %+v", back)
	}
	if got := h.readConf("agent.conf"); got != "good 1" {
		t.Fatalf("agent.conf after the next start = %q, want the content before the batch", got)
	}
	if st := h.state(); !st.Active() || st.SubState != "running" {
		t.Fatalf("agent after the rollback: %+v", st)
	}
}

// A reload during a slow restart: the old Rollout hands the restart under
// way and anything new to the next one and returns at once; the next one
// waits for that restart to end before it restarts the unit again.
func TestAHandOverDoesNotWaitForTheRestartUnderWay(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	if err := h.m.InstallUnit(h.ctx, h.unit, gatedAgent(h.dir)); err != nil {
		t.Fatal(err)
	}
	open := h.gate()
	old := h.start(t.TempDir(), rollout.Options{})
	old.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	eventtest.Take[event.Pending](t, h.ctx, old.events)
	h.waitState("restarting", func(st restart.State) bool { return st.SubState == "start-pre" })

	next := h.start(t.TempDir(), rollout.Options{})
	old.rollout.HandOver(next.rollout)
	old.stop() // must return while the restart waits for the gate
	old.rollout.Submit(h.writeConf("agent.conf", "good 3"))
	eventtest.Take[event.Pending](t, h.ctx, next.events)
	if n := next.rollout.BatchesStarted(); n != 0 {
		t.Fatalf("the next Rollout restarted the unit while the old one still did")
	}

	open()
	if r := eventtest.Take[event.Restart](t, h.ctx, old.events); r.Result != event.ResultDone {
		t.Fatalf("the restart under way at the hand-over: %+v", r)
	}
	if r := eventtest.Take[event.Restart](t, h.ctx, next.events); r.Result != event.ResultDone {
		t.Fatalf("the change submitted after the hand-over: %+v", r)
	}
	h.waitStarts(3)
}

// An operator stopped the agent while hostd was away: the restart hostd
// left unfinished is dropped, and the stopped agent is not started again.
func TestAnUnfinishedRestartOfAStoppedUnitIsDropped(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	state := t.TempDir()
	change := h.writeConf("agent.conf", "bad key")
	running.New(state, slog.New(slog.DiscardHandler)).Begin(h.unit, running.Batch{Begun: time.Now(), Files: []running.BatchFile{
		{Destination: change.Destination, Digest: running.Digest([]byte("bad key\n")), Previous: running.Digest([]byte("good 1\n"))},
	}})
	if err := h.m.StopUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}

	next := h.start(state, rollout.Options{})
	next.rollout.Reconcile(h.ctx, h.watched())
	if r := eventtest.Take[event.Running](t, h.ctx, next.events); len(r.Files) != 0 {
		t.Fatalf("a stopped agent runs on nothing: %+v", r)
	}
	checkNoPending(t, next.events)
	if st := h.state(); st.ActiveState != "inactive" {
		t.Fatalf("the stopped agent was started: %+v", st)
	}
	if _, ok := running.New(state, slog.New(slog.DiscardHandler)).Unfinished(h.unit); ok {
		t.Error("the unfinished restart of a stopped agent is still recorded")
	}
}

// hostd stopped in the middle of a rollback: the previous content was put
// back, its restart not confirmed. The next hostd restarts the agent onto
// it at once, not at the next maintenance window: it is a rollback.
func TestARollbackLeftUnfinishedIsRestartedAtOnceByTheNextHostd(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	state := t.TempDir()
	h.writeConf("agent.conf", "bad key")
	restored := h.writeConf("agent.conf", "good 1") // the rollback's restore, after the agent started
	running.New(state, slog.New(slog.DiscardHandler)).Begin(h.unit, running.Batch{Begun: time.Now(), Files: []running.BatchFile{
		{Destination: restored.Destination, Digest: running.Digest([]byte("bad key\n")), Previous: running.Digest([]byte("good 1\n"))},
	}})

	next := h.start(state, rollout.Options{Window: laterWindow()})
	next.rollout.Reconcile(h.ctx, h.watched())
	if p := eventtest.Take[event.Pending](t, h.ctx, next.events); !p.Due.Equal(p.Time) {
		t.Fatalf("the rollback's restart waits until %s: %+v", p.Due, p)
	}
	if r := eventtest.Take[event.Restart](t, h.ctx, next.events); r.Result != event.ResultDone {
		t.Fatalf("the rollback's restart: %+v", r)
	}
	h.waitStarts(2)
}

// A reload that removed the unit's template: the restart it was owed is
// dropped, not handed to the new configuration, and nothing is published
// for the unit any more (a Pending would bring back its metric series).
func TestAHandOverDropsTheBatchOfAUnitTheNextConfigurationLacks(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	old := h.start(t.TempDir(), rollout.Options{Debounce: time.Hour})
	old.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	eventtest.Take[event.Pending](t, h.ctx, old.events)

	next := h.start(t.TempDir(), rollout.Options{Debounce: time.Hour, Units: []string{"other.service"}})
	old.rollout.HandOver(next.rollout)
	old.stop()
	if units := next.rollout.PendingUnits(); len(units) != 0 {
		t.Fatalf("the next Rollout owes restarts of %v, want none: its configuration does not restart %s", units, h.unit)
	}
	old.rollout.Submit(h.writeConf("agent.conf", "good 3")) // a late change of the old renderer
	if units := next.rollout.PendingUnits(); len(units) != 0 {
		t.Fatalf("a late change made the next Rollout owe restarts of %v", units)
	}
	if n := next.rollout.BatchesStarted(); n != 0 {
		t.Fatalf("the next Rollout restarted %s", h.unit)
	}
}

// unreadableState accepts every restart and cannot read the unit's state
// after it, so every batch is requeued for a retry; its process is read at
// once.
type unreadableState struct{}

func (unreadableState) TryRestart(context.Context, string) (restart.Result, error) {
	return restart.Result{Job: event.ResultDone}, nil
}

func (u unreadableState) Restart(ctx context.Context, unit string) (restart.Result, error) {
	return u.TryRestart(ctx, unit)
}

func (unreadableState) UnitState(context.Context, string) (restart.State, error) {
	return restart.State{}, errors.New("connection closed")
}

func (unreadableState) MainProcess(context.Context, string) (restart.Process, error) {
	return restart.Process{Started: time.Now()}, nil
}

// Changes keep arriving while a batch requeued for its retry is settled:
// they join the requeued batch, which settle and the retry's announcement
// must read only under the lock (the race detector checks it).
func TestChangesWhileARetriedBatchSettlesRaceNothing(t *testing.T) {
	dir := t.TempDir()
	rec := eventtest.New[event.Event]()
	r := rollout.New(rollout.Options{
		Restarter: unreadableState{}, Sink: rec, Running: running.New(dir, slog.New(slog.DiscardHandler)),
		RetryInterval: time.Millisecond, MaxRetry: time.Millisecond,
	})
	runtest.UntilEnd(t, 10*time.Second, nil, r.Run)
	r.Submit(rollout.Change{Unit: "a.service", Destination: filepath.Join(dir, "a.conf")})
	stop := make(chan struct{})
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r.Submit(rollout.Change{Unit: "a.service", Destination: filepath.Join(dir, fmt.Sprintf("%d.conf", i%50))})
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 50 { // batches settled, each one retried
		eventtest.Take[event.Running](t, ctx, rec)
	}
	close(stop)
	<-submitted
}

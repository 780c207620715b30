package rollout_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// These tests are about what a restart says about the new content: only the
// unit failing on it is a reason to roll back; anything else is retried, and
// a unit an operator stopped stays stopped.

// waitActiveState polls the agent's state until ok, for the test's deadline.
func (h *host) waitActiveState(ok func(restart.State) bool) restart.State {
	h.t.Helper()
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		st, err := h.conn.UnitState(h.ctx, h.unit)
		if err == nil && ok(st) {
			return st
		}
		select {
		case <-ticker.C:
		case <-h.ctx.Done():
			h.t.Fatalf("agent never reached the wanted state; last %+v (%v)", st, err)
		}
	}
}

func (h *host) touch(name string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, name), nil, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// An operator stops the agent while hostd's restart job runs: systemd
// cancels hostd's job. That says nothing about the new keys: they stay, the
// restart is retried later, and the retry leaves the stopped agent stopped.
// (Stopped while its ExecStartPre runs, systemd calls the unit failed.)
func TestOperatorStopDuringTheRestartIsRetriedNotRolledBack(t *testing.T) {
	h := newHost(t, "slow-start", rollout.Options{RetryInterval: 300 * time.Millisecond})
	h.waitStarts(1)
	h.touch("slow") // from now on a start takes 30 s

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	eventtest.Take[event.Pending](t, h.ctx, h.events)
	h.waitActiveState(func(s restart.State) bool { return s.ActiveState == "activating" }) // hostd's job runs
	if err := h.m.StopUnit(h.ctx, h.unit); err != nil {                                    // systemctl --user stop
		t.Fatal(err)
	}

	first := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if first.Result != "canceled" || first.RolledBack || !strings.Contains(first.Err, "retrying at") {
		t.Fatalf("restart whose job an operator canceled: %+v, want canceled and retried", first)
	}
	if p := eventtest.Take[event.Pending](t, h.ctx, h.events); p.Unit != h.unit {
		t.Fatalf("no retry scheduled after the canceled job: %+v", p)
	}
	retry := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if retry.Result != event.ResultNotRunning || retry.RolledBack || retry.Err != "" {
		t.Fatalf("retry of a stopped agent: %+v, want %s", retry, event.ResultNotRunning)
	}
	if st := h.state(); st.Active() || st.ActiveState == "activating" {
		t.Fatalf("the agent the operator stopped was started again: %+v", st)
	}
	if got := h.readConf("agent.conf"); got != "good 2" {
		t.Fatalf("agent.conf = %q after a canceled restart, want the new content kept", got)
	}
	if err := h.rollout.Refuse(filepath.Join(h.dir, "agent.conf"), []byte("good 2\n")); err != nil {
		t.Fatalf("content whose restart was canceled is refused: %v", err)
	}
	h.waitStarts(1)
}

// hostd's own wait for the job runs out (a slow stop, or the job's result
// lost with the bus): the job may still be running, and the keys may be
// fine. Retried, not rolled back.
func TestJobTimeoutIsRetriedNotRolledBack(t *testing.T) {
	h := newHostWithJobTimeout(t, "slow-start", 300*time.Millisecond, rollout.Options{RetryInterval: 300 * time.Millisecond})
	h.touch("slow")

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	first := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if first.Result != event.ResultJobTimeout || first.RolledBack {
		t.Fatalf("first restart: %+v, want %s and no rollback", first, event.ResultJobTimeout)
	}
	if got := h.readConf("agent.conf"); got != "good 2" {
		t.Fatalf("agent.conf = %q after hostd's job timeout, want the new content kept", got)
	}
	// Starts are quick again: the retry restarts the agent on the new keys.
	if err := os.Remove(filepath.Join(h.dir, "slow")); err != nil {
		t.Fatal(err)
	}
	for {
		r := eventtest.Take[event.Restart](t, h.ctx, h.events)
		if r.RolledBack {
			t.Fatalf("rolled back after a job timeout: %+v", r)
		}
		if r.Result == event.ResultDone {
			break
		}
	}
	if got := h.readConf("agent.conf"); got != "good 2" {
		t.Fatalf("agent.conf = %q, want the new content", got)
	}
}

// A stopped agent is not started by a change: it reads the new file when
// the operator starts it.
func TestStoppedAgentIsNotStarted(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	h.waitStarts(1)
	if err := h.m.StopUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	r := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if r.Result != event.ResultNotRunning || r.RolledBack || r.Err != "" || r.ActiveState != "inactive" {
		t.Fatalf("change for a stopped agent: %+v, want %s", r, event.ResultNotRunning)
	}
	if st := h.state(); st.ActiveState != "inactive" {
		t.Fatalf("hostd started the agent an operator stopped: %+v", st)
	}
	h.waitStarts(1)
	if got := h.readConf("agent.conf"); got != "good 2" {
		t.Fatalf("agent.conf = %q, want the new content for the next start", got)
	}
}

// An operator stops the agent while hostd watches it come up on the new
// keys: not a failure of the keys, no rollback, also while the stop takes
// its time (the unit is deactivating).
func TestOperatorStopDuringTheHealthCheckIsNotRolledBack(t *testing.T) {
	h := newHost(t, "slow-stop", rollout.Options{StableFor: time.Minute, ActiveTimeout: 5 * time.Second})
	before := h.state()

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	h.waitActiveState(func(s restart.State) bool { return s.Active() && s.InvocationID != before.InvocationID })
	if err := h.m.StopUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}
	r := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if r.Result != event.ResultNotRunning || r.RolledBack {
		t.Fatalf("agent stopped during the health check: %+v, want %s", r, event.ResultNotRunning)
	}
	if got := h.readConf("agent.conf"); got != "good 2" {
		t.Fatalf("agent.conf = %q, want the new content kept", got)
	}
}

// A failed agent is not started by a change either: systemd also calls failed
// a unit an operator stopped during its start.
func TestFailedAgentIsNotStarted(t *testing.T) {
	h := newHost(t, "refuse-start", rollout.Options{})
	h.writeConf("agent.conf", "bad 0") // written behind hostd's back
	if _, err := h.conn.Restart(h.ctx, h.unit); err == nil {
		t.Fatal("agent restarted on a bad config")
	}
	failed := h.waitActiveState(func(s restart.State) bool { return s.ActiveState == "failed" })

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	if r := eventtest.Take[event.Restart](t, h.ctx, h.events); r.Result != event.ResultNotRunning || r.RolledBack {
		t.Fatalf("change for a failed agent: %+v, want %s", r, event.ResultNotRunning)
	}
	if st := h.state(); st.ActiveState != "failed" || st.InvocationID != failed.InvocationID {
		t.Fatalf("hostd started a failed agent: before %+v, after %+v", failed, st)
	}
}

// scriptedSystemd answers the first restart with a given job result and any
// later one with done, and shows the unit running, or, with stateErr, fails
// every state read after the first restart. It records the verbs used.
type scriptedSystemd struct {
	job      string
	stateErr error

	mu        sync.Mutex
	restarted bool
	verbs     []string
}

func (s *scriptedSystemd) TryRestart(ctx context.Context, unit string) (restart.Result, error) {
	return s.restart("try-restart")
}

func (s *scriptedSystemd) Restart(ctx context.Context, unit string) (restart.Result, error) {
	return s.restart("restart")
}

func (s *scriptedSystemd) restart(verb string) (restart.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	job := s.job
	if s.restarted {
		job = event.ResultDone
	}
	s.restarted = true
	s.verbs = append(s.verbs, verb)
	res := restart.Result{Job: job}
	if job == event.ResultJobTimeout {
		return res, restart.ErrJobTimeout
	}
	if job != event.ResultDone {
		return res, restart.ErrJobFailed
	}
	return res, nil
}

func (s *scriptedSystemd) UnitState(ctx context.Context, unit string) (restart.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restarted && s.stateErr != nil && len(s.verbs) == 1 {
		return restart.State{}, s.stateErr
	}
	return restart.State{ActiveState: "active", SubState: "running", MainPID: 7, InvocationID: "1"}, nil
}

func TestOnlyAFailedJobIsAReasonToRollBack(t *testing.T) {
	for _, tc := range []struct {
		job      string
		stateErr error
		result   string
		rollback bool
	}{
		{job: "canceled", result: "canceled"},
		{job: "dependency", result: "dependency"},
		{job: "timeout", result: "timeout"},
		{job: event.ResultJobTimeout, result: event.ResultJobTimeout},
		{job: event.ResultDone, stateErr: errors.New("connection reset by peer"), result: event.ResultUnconfirmed},
		{job: event.ResultFailed, result: event.ResultFailed, rollback: true},
	} {
		t.Run(tc.result, func(t *testing.T) {
			clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
			sd := &scriptedSystemd{job: tc.job, stateErr: tc.stateErr}
			restored := make(chan string, 1)
			restore := func(dest string, _ *write.Snapshot) error { restored <- dest; return nil }
			rec := eventtest.New[event.Event]()
			r := rollout.New(rollout.Options{
				Restarter: sd, Restore: restore, Sink: rec,
				ActiveTimeout: 200 * time.Millisecond, StableFor: 10 * time.Millisecond, WatchInterval: 10 * time.Millisecond,
				RetryInterval: time.Minute, Clock: stage.Clock{Now: clock.Now, Until: clock.Until},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			runtest.UntilEnd(t, 10*time.Second, nil, r.Run)

			r.Submit(rollout.Change{Unit: "agent.service", Destination: "/etc/agent.conf", Previous: &write.Snapshot{}})
			eventtest.Take[event.Pending](t, ctx, rec)
			first := eventtest.Take[event.Restart](t, ctx, rec)
			if first.Result != tc.result || first.RolledBack {
				t.Fatalf("first event %+v, want result %s", first, tc.result)
			}
			if tc.rollback {
				if second := eventtest.Take[event.Restart](t, ctx, rec); second.Result != event.ResultRolledBack {
					t.Fatalf("after a failed job: %+v, want a rollback", second)
				}
				return
			}
			if verbs := sd.verbsUsed(); len(verbs) != 1 || verbs[0] != "try-restart" {
				t.Fatalf("restarts %v, want one try-restart", verbs)
			}
			retry := eventtest.Take[event.Pending](t, ctx, rec)
			if want := clock.Now().Add(time.Minute); !retry.Due.Equal(want) || !strings.Contains(first.Err, want.Format(time.RFC3339)) {
				t.Fatalf("retry due %s (error %q), want %s", retry.Due, first.Err, want)
			}
			select {
			case dest := <-restored:
				t.Fatalf("%s was rolled back after %q, which says nothing about its content", dest, tc.result)
			default:
			}
			if err := r.Refuse("/etc/agent.conf", nil); err != nil {
				t.Fatalf("content refused after %q: %v", tc.result, err)
			}
		})
	}
}

func (s *scriptedSystemd) verbsUsed() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.verbs...)
}

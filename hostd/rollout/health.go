package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
)

// verdict is what one restart says about the content it ran the unit on.
type verdict int

const (
	healthy    verdict = iota // the unit came up, stayed up (and passed the check)
	unhealthy                 // the unit did not survive the content: roll back
	retryLater                // nothing was learnt about the content: try again later
	notRunning                // the unit is stopped: not restarted; its files are used at its next start
)

// attempt is one restart and the health check after it.
type attempt struct {
	result   string
	state    restart.State
	duration time.Duration
	err      error
	verdict  verdict
}

// failedUnit says what restartAndCheck does with a unit that is failed
// before the restart.
type failedUnit bool

const (
	leaveFailed failedUnit = false // a change: the unit may have failed because an operator stopped it
	startFailed failedUnit = true  // a rollback: hostd just saw the unit fail on the content it put there
)

// restartAndCheck restarts unit and judges the content it then runs on. A
// running unit (active, activating, reloading) is try-restarted, so an
// operator's stop in the meantime wins. A stopped unit is left alone, and so
// is a failed one unless whenFailed is startFailed: systemd also calls a unit
// failed that an operator stopped while it was starting (its ExecStartPre
// killed), so only the rollback, which follows a failure hostd saw itself,
// starts it.
func (r *Rollout) restartAndCheck(ctx context.Context, unit string, whenFailed failedUnit) attempt {
	start := time.Now()
	before, err := r.unitState(ctx, unit)
	if err != nil {
		return attempt{result: event.ResultError, state: before, duration: time.Since(start), err: err, verdict: retryLater}
	}
	restartUnit := r.opts.Restarter.TryRestart
	switch {
	case before.Inactive(), before.Failed() && whenFailed == leaveFailed:
		return attempt{result: event.ResultNotRunning, state: before, verdict: notRunning}
	case before.Failed():
		restartUnit = r.opts.Restarter.Restart
	}
	res, err := restartUnit(ctx, unit)
	if err != nil {
		a := attempt{result: res.Job, duration: time.Since(start), err: err, verdict: jobVerdict(res.Job)}
		if res.Job == "" {
			a.result = event.ResultError // no job was queued: nothing happened to the unit
		}
		a.state, _ = r.unitState(ctx, unit)
		return a
	}
	return r.judge(ctx, unit, start)
}

// judge runs the health check (and the check command) on a unit whose
// restart job is done, and says what it means for the content; start is
// when the attempt began.
func (r *Rollout) judge(ctx context.Context, unit string, start time.Time) attempt {
	st, v, err := r.waitHealthy(ctx, unit)
	if v == healthy && r.opts.Check != nil {
		st, v, err = r.checkRunning(ctx, unit, st)
	}
	a := attempt{result: event.ResultDone, state: st, duration: time.Since(start), err: err, verdict: v}
	switch v {
	case unhealthy:
		a.result = event.ResultUnhealthy
	case retryLater:
		a.result = event.ResultUnconfirmed
	case notRunning:
		a.result = event.ResultNotRunning
	}
	return a
}

// jobVerdict judges a restart job that did not end done. Only failed says
// the unit could not start on the new content. "canceled" (another job
// replaced it: an operator's stop or restart, a shutdown), "dependency" (a
// unit it requires failed), systemd's "timeout" (JobTimeoutSec), hostd's own
// event.ResultJobTimeout (the job is slow, or its result was lost with the
// bus) and any newer result say nothing about the content.
func jobVerdict(job string) verdict {
	if job == event.ResultFailed {
		return unhealthy
	}
	return retryLater
}

// RetriedLater reports whether a restart published with result is tried
// again later because it said nothing about the new content: no job was
// queued, the job ended other than done or failed, or the unit's state could
// not be read afterwards.
func RetriedLater(result string) bool {
	switch result {
	case event.ResultDone, event.ResultFailed, event.ResultUnhealthy, event.ResultNotRunning, event.ResultRolledBack, event.ResultRollbackFailed, event.ResultRejected:
		return false
	}
	return true
}

// waitHealthy polls the unit until it is up (active; for a service also
// running) and has stayed up for StableFor as the same instance: same
// invocation, main PID and NRestarts, so an agent that exits and is
// restarted by Restart= meanwhile is caught. A unit that fails, or stops
// running after it came up, failed; one that is not up within ActiveTimeout
// failed too, unless its state could not be read, which says nothing about
// the content. A unit found inactive was stopped (by an operator, or the
// restart found it stopped): not a failure of the content; one being stopped
// or reloaded is watched until that is over. The reads use the wall clock,
// not Options.Now: they wait for systemd.
func (r *Rollout) waitHealthy(ctx context.Context, unit string) (restart.State, verdict, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, r.opts.ActiveTimeout+r.opts.StableFor+r.opts.WatchInterval)
	defer cancel()

	var last, up restart.State
	var upSince time.Time
	var lastErr error
	for {
		st, err := r.opts.Restarter.UnitState(ctx, unit)
		switch {
		case err != nil && r.isStopping():
			return last, retryLater, fmt.Errorf("%w: %w", errUnanswered, err)
		case err != nil:
			lastErr = err
		case st.Inactive():
			return st, notRunning, nil
		case st.Failed():
			return st, unhealthy, fmt.Errorf("%s is %s after the restart", unit, describe(st))
		case st.Changing():
			// Being stopped or reloaded (an operator, most likely): judged
			// once that is over.
		case upSince.IsZero():
			if st.Up(unit) {
				up, upSince = st, time.Now()
			}
		case !st.Up(unit) || !sameInstance(up, st):
			return st, unhealthy, fmt.Errorf("%s did not stay up: %s, %s after it came up", unit, describe(st), time.Since(upSince).Round(time.Millisecond))
		case time.Since(upSince) >= r.opts.StableFor:
			return st, healthy, nil
		}
		if err == nil {
			last, lastErr = st, nil
		}
		if upSince.IsZero() && time.Since(start) >= r.opts.ActiveTimeout {
			return r.notUp(unit, last, lastErr)
		}
		wait := r.opts.WatchInterval
		if !upSince.IsZero() {
			wait = min(wait, r.opts.StableFor-time.Since(upSince))
		}
		select {
		case <-ctx.Done():
			if r.isStopping() && errors.Is(ctx.Err(), context.Canceled) {
				return last, retryLater, errUnanswered // the stop could not wait any longer
			}
			return r.notUp(unit, last, lastErr)
		case <-time.After(wait):
		}
	}
}

// notUp ends a health check whose time ran out.
func (r *Rollout) notUp(unit string, last restart.State, lastErr error) (restart.State, verdict, error) {
	if lastErr != nil && !errors.Is(lastErr, context.DeadlineExceeded) {
		return last, retryLater, fmt.Errorf("state of %s could not be read after the restart: %w", unit, lastErr)
	}
	return last, unhealthy, fmt.Errorf("%s not up and stable for %s within %s (last state %s)", unit, r.opts.StableFor, r.opts.ActiveTimeout, describe(last))
}

// checkRunning runs the check command against the unit that passed the
// stability check, then makes sure it is still that instance.
func (r *Rollout) checkRunning(ctx context.Context, unit string, up restart.State) (restart.State, verdict, error) {
	checkErr := r.runCheck(ctx, unit)
	st, err := r.unitState(ctx, unit)
	switch {
	case err != nil:
		return up, retryLater, fmt.Errorf("state of %s could not be read after the check: %w", unit, err)
	case st.Inactive():
		return st, notRunning, nil // stopped meanwhile: the check's verdict means nothing
	case !st.Up(unit) || !sameInstance(up, st):
		return st, unhealthy, fmt.Errorf("%s did not stay up during the check: %s", unit, describe(st))
	case checkErr != nil:
		return st, unhealthy, checkErr
	}
	return st, healthy, nil
}

// unitState is one state read outside the health check's polling, bounded
// by ActiveTimeout so a bus that stopped answering cannot hold a batch.
func (r *Rollout) unitState(ctx context.Context, unit string) (restart.State, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.ActiveTimeout)
	defer cancel()
	return r.opts.Restarter.UnitState(ctx, unit)
}

func (r *Rollout) isStopping() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}

func sameInstance(a, b restart.State) bool {
	return a.InvocationID == b.InvocationID && a.MainPID == b.MainPID && a.NRestarts == b.NRestarts
}

// describe is a unit's state for an error text: "failed/failed (exit-code)".
func describe(st restart.State) string {
	s := st.ActiveState + "/" + st.SubState
	if st.Result != "" && st.Result != "success" {
		s += " (" + st.Result + ")"
	}
	if st.NRestarts > 0 {
		s += fmt.Sprintf(", %d automatic restart(s)", st.NRestarts)
	}
	return s
}

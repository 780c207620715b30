package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
)

// Restart results published in event.Restart beyond systemd's job results
// (done, failed, timeout, canceled, dependency, skipped, restart.JobTimeout).
const (
	ResultUnhealthy      = "unhealthy"       // job done, but the unit did not stay active
	ResultError          = "error"           // systemd did not accept the restart; retried later
	ResultRolledBack     = "rolled_back"     // backups restored and the unit is healthy on them
	ResultRollbackFailed = "rollback_failed" // backups restored, but the unit is still not healthy
	ResultRejected       = "rejected"        // the same content failed before: backups restored, no restart
)

// errUnanswered ends a health check that hostd gave up while stopping
// (systemd stopped answering, or the stop could not wait any longer).
var errUnanswered = errors.New("hostd is stopping: the unit's health is unknown")

// attempt is one restart and the health check after it.
type attempt struct {
	result   string
	state    restart.State
	duration time.Duration
	err      error
}

// apply restarts the batch's unit; if the unit does not survive the
// change, it restores the batch's backups and restarts once more.
func (r *Rollout) apply(ctx context.Context, b *batch) {
	if when, ok := r.rejectedBefore(b); ok {
		r.rejectAgain(ctx, b, when)
		return
	}
	first := r.firstAttempt(ctx, b)
	if first.result == ResultError {
		due := r.requeue(b)
		r.publish(b.unit, first, false, fmt.Sprintf("%v; retrying at %s", first.err, due.Format(time.RFC3339)))
		// Still scheduled: say so after the failure, so a consumer tracking
		// "pending" sees the retry.
		r.sink.Publish(event.Pending{Time: r.opts.Now(), Unit: b.unit, Due: due, Cause: b.destinations()})
		return
	}
	r.resetRetries(b.unit)
	if first.err == nil {
		r.publish(b.unit, first, false, "")
		return
	}
	r.publish(b.unit, first, false, first.err.Error())
	if errors.Is(first.err, errUnanswered) {
		return // the unit's health is unknown: no reason to take the change back
	}

	rejected := digests(b)
	restored, problems := r.restoreBackups(b)
	r.remember(rejected, restored)
	if len(restored) == 0 {
		problems = append(problems, "no backup to roll back to")
		r.publish(b.unit, attempt{result: ResultRollbackFailed, state: first.state}, true, strings.Join(problems, "; "))
		return
	}
	second := r.restartAndCheck(ctx, b.unit)
	second.result = ResultRolledBack
	why := fmt.Sprintf("the unit did not survive the change to %s (%v); restored the previous content", strings.Join(restored, ", "), first.err)
	if second.err != nil {
		second.result = ResultRollbackFailed
		why += fmt.Sprintf(", but the unit is still not healthy: %v", second.err)
	}
	if len(problems) > 0 {
		why += "; " + strings.Join(problems, "; ")
	}
	r.publish(b.unit, second, true, why)
}

// restartAndCheck restarts unit and waits until it is active and stable.
func (r *Rollout) restartAndCheck(ctx context.Context, unit string) attempt {
	start := time.Now()
	res, err := r.restarter.Restart(ctx, unit)
	if err != nil {
		a := attempt{result: res.Job, duration: time.Since(start), err: err}
		if res.Job == "" {
			a.result = ResultError // no job was queued: nothing happened to the unit
		}
		a.state, _ = r.restarter.UnitState(ctx, unit)
		return a
	}
	st, err := r.waitHealthy(ctx, unit)
	a := attempt{result: "done", state: st, duration: time.Since(start)}
	if err != nil {
		a.result, a.err = ResultUnhealthy, err
	}
	return a
}

// waitHealthy polls the unit until it is active and stable, or fails when it
// ends up failed/inactive or ActiveTimeout passes.
//
// "Stable" is a heuristic: two reads one WatchInterval apart show the unit
// up (active; for services also SubState running) with the same invocation,
// main PID and NRestarts. systemd reports a Type=simple service's restart
// job "done" as soon as the process is forked, so an agent that reads its
// config and exits a moment later looks active on the first read; the second
// read catches it if it died (failed/inactive) or was restarted by
// Restart= (new PID or NRestarts moved) within the interval. An agent that
// dies later than WatchInterval after starting is not caught: choose
// WatchInterval longer than the agent's start-up (a Type=notify agent is
// judged more reliably, as systemd only reports it active when it says so).
func (r *Rollout) waitHealthy(ctx context.Context, unit string) (restart.State, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.ActiveTimeout)
	defer cancel()
	ticker := time.NewTicker(r.opts.WatchInterval)
	defer ticker.Stop()

	var last, up restart.State
	var lastErr error
	seenUp := false
	for {
		st, err := r.restarter.UnitState(ctx, unit)
		switch {
		case err != nil && r.isStopping():
			return last, fmt.Errorf("%w: %w", errUnanswered, err)
		case err != nil:
			lastErr = err
			seenUp = false
		case st.ActiveState == "failed" || st.ActiveState == "inactive":
			return st, fmt.Errorf("%s is %s (%s) after the restart", unit, st.ActiveState, st.SubState)
		case isUp(unit, st) && seenUp && sameInstance(up, st):
			return st, nil
		case isUp(unit, st):
			up, seenUp = st, true
		default:
			seenUp = false
		}
		if err == nil {
			last, lastErr = st, nil
		}
		select {
		case <-ctx.Done():
			if r.isStopping() && errors.Is(ctx.Err(), context.Canceled) {
				return last, errUnanswered
			}
			if lastErr != nil && !errors.Is(lastErr, context.DeadlineExceeded) {
				return last, fmt.Errorf("%s not active and stable within %s: %w", unit, r.opts.ActiveTimeout, lastErr)
			}
			return last, fmt.Errorf("%s not active and stable within %s (last state %s/%s)", unit, r.opts.ActiveTimeout, last.ActiveState, last.SubState)
		case <-ticker.C:
		}
	}
}

func (r *Rollout) isStopping() bool {
	select {
	case <-r.stopping:
		return true
	default:
		return false
	}
}

func isUp(unit string, st restart.State) bool {
	if !st.Active() {
		return false
	}
	return !strings.HasSuffix(unit, ".service") || st.SubState == "running"
}

func sameInstance(a, b restart.State) bool {
	return a.InvocationID == b.InvocationID && a.MainPID == b.MainPID && a.NRestarts == b.NRestarts
}

// restoreBackups puts back the content every destination of the batch had
// before the batch's first change.
func (r *Rollout) restoreBackups(b *batch) (restored, problems []string) {
	for _, c := range b.changes {
		if c.Previous == nil {
			problems = append(problems, fmt.Sprintf("%s had no previous content to restore", c.Destination))
			continue
		}
		if err := r.restore(c.Destination, c.Previous); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		restored = append(restored, c.Destination)
	}
	return restored, problems
}

func (r *Rollout) publish(unit string, a attempt, rolledBack bool, errText string) {
	r.sink.Publish(event.Restart{
		Time:        r.opts.Now(),
		Unit:        unit,
		Result:      a.result,
		Duration:    a.duration,
		ActiveState: a.state.ActiveState,
		SubState:    a.state.SubState,
		RolledBack:  rolledBack,
		Err:         errText,
	})
}

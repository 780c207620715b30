package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// errUnanswered ends a health check that hostd gave up while stopping
// (systemd stopped answering, or the stop could not wait any longer).
var errUnanswered = errors.New("hostd is stopping: the unit's health is unknown")

// apply restarts the batch's unit. If the unit does not survive the change,
// it restores the batch's backups and restarts once more; if the restart
// says nothing about the change, the batch is tried again later.
func (r *Rollout) apply(ctx context.Context, b *batch) {
	if when, ok := r.rejectedBefore(b); ok {
		r.rejectAgain(ctx, b, when)
		return
	}
	// The content this restart runs the unit on: what is rejected if the
	// unit does not survive it, whatever lands on disk meanwhile.
	issued := digests(b)
	first := r.firstAttempt(ctx, b)
	switch first.verdict {
	case retryLater:
		r.retry(b, first)
		return
	case healthy, notRunning:
		r.resetRetries(b.unit)
		r.publish(b.unit, first, false, "")
		return
	}
	r.resetRetries(b.unit)
	r.publish(b.unit, first, false, first.err.Error())
	r.rollBack(ctx, b, issued, first)
}

// retry requeues a batch whose restart said nothing about its content.
func (r *Rollout) retry(b *batch, a attempt) {
	due, cause := r.requeue(b)
	if due.IsZero() {
		r.publish(b.unit, a, false, fmt.Sprintf("%v; not retried: the configuration no longer restarts %s", a.err, b.unit))
		return
	}
	r.publish(b.unit, a, false, fmt.Sprintf("%v; retrying at %s", a.err, due.Format(time.RFC3339)))
	// Still scheduled: say so after the failure, so a consumer tracking
	// "pending" sees the retry.
	r.opts.Sink.Publish(event.Pending{Time: r.opts.Now(), Unit: b.unit, Due: due, Cause: cause})
}

// rollBack puts back what the batch's destinations held before it,
// remembers the content the unit did not survive, and restarts the unit on
// the restored files.
func (r *Rollout) rollBack(ctx context.Context, b *batch, issued map[string]digest, first attempt) {
	restored, problems := r.restoreBackups(b)
	r.remember(issued, restored)
	r.rebase(b, restored)
	if len(restored) == 0 {
		problems = append(problems, "no backup to roll back to")
		r.publish(b.unit, attempt{result: event.ResultRollbackFailed, state: first.state}, true, strings.Join(problems, "; "))
		return
	}
	second := r.restartAndCheck(ctx, b.unit, startFailed)
	why := fmt.Sprintf("the unit did not survive the change to %s (%v); restored the previous content", strings.Join(restored, ", "), first.err)
	result := event.ResultRolledBack
	switch second.verdict {
	case notRunning:
		why += "; the unit is stopped and uses it at its next start"
	case retryLater:
		// The batch now holds the restored content: running it again
		// restarts the unit on that.
		if due, cause := r.requeue(b); !due.IsZero() {
			why += fmt.Sprintf("; the restart on it said nothing (%v), retrying at %s", second.err, due.Format(time.RFC3339))
			defer r.opts.Sink.Publish(event.Pending{Time: r.opts.Now(), Unit: b.unit, Due: due, Cause: cause})
		}
	case unhealthy:
		result = event.ResultRollbackFailed
		why += fmt.Sprintf(", but the unit is still not healthy: %v", second.err)
	}
	if len(problems) > 0 {
		why += "; " + strings.Join(problems, "; ")
	}
	second.result = result
	r.publish(b.unit, second, true, why)
}

// restoreBackups puts back the content every destination of the batch had
// before the batch's first change.
func (r *Rollout) restoreBackups(b *batch) (restored, problems []string) {
	for _, c := range b.changes {
		if c.Previous == nil {
			problems = append(problems, fmt.Sprintf("%s had no previous content to restore", c.Destination))
			continue
		}
		if err := r.opts.Restore(c.Destination, c.Previous); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		restored = append(restored, c.Destination)
	}
	return restored, problems
}

// rebase makes a batch queued for the unit during this one roll back to the
// content just restored (what the unit runs on now), not to the content it
// did not survive.
func (r *Rollout) rebase(b *batch, restored []string) {
	previous := make(map[string]*write.Snapshot, len(restored))
	for _, c := range b.changes {
		previous[c.Destination] = c.Previous
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.pending[b.unit]
	if next == nil {
		return
	}
	for _, dest := range restored {
		for i := range next.changes {
			if next.changes[i].Destination == dest {
				next.changes[i].Previous = previous[dest]
			}
		}
	}
}

func (r *Rollout) publish(unit string, a attempt, rolledBack bool, errText string) {
	r.opts.Sink.Publish(event.Restart{
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

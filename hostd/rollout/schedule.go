package rollout

import (
	"slices"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
)

// dueAt is when a batch whose restart may run from earliest on is due:
// earliest itself, or the window's next opening when earliest falls outside
// it, plus the batch's share of the splay. Inside a window the splay is
// shortened to the time left until the window closes, so every host of a
// fleet restarts inside the window and the hosts stay spread over it: with
// a 02:00-04:00 window and a 30m splay, changes made at noon restart between
// 02:00 and 02:30; with a 3h splay, between 02:00 and 04:00.
func (r *Rollout) dueAt(earliest time.Time, share float64) time.Time {
	start := r.opts.Window.Next(earliest)
	splay := max(r.opts.Splay, 0)
	if closes := r.opts.Window.closing(start); !closes.IsZero() && closes.Sub(start) < splay {
		splay = closes.Sub(start)
	}
	return start.Add(time.Duration(share * float64(splay)))
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// manages reports whether this configuration restarts unit.
func (r *Rollout) manages(unit string) bool {
	return r.opts.Units == nil || slices.Contains(r.opts.Units, unit)
}

// requeue puts a batch back whose restart said nothing about its content,
// due after a backoff that doubles per retry in a row (and the batch's
// splay), merged with any newer changes. It returns when the batch is due
// (zero: dropped) and the files it now restarts for, read under the lock:
// once back in pending, the batch takes the changes Submit adds.
func (r *Rollout) requeue(b *batch) (time.Time, string) {
	r.mu.Lock()
	if next := r.next; next != nil {
		r.mu.Unlock()
		return next.requeue(b)
	}
	defer r.mu.Unlock()
	if !r.manages(b.unit) {
		return time.Time{}, "" // the configuration no longer restarts it
	}
	r.retries[b.unit]++
	b.retry = r.opts.Now().Add(backoff.Doubled(r.retries[b.unit], r.opts.RetryInterval, r.opts.MaxRetry))
	due := r.dueAt(b.retry, b.share)
	if newer := r.pending[b.unit]; newer != nil {
		for _, c := range newer.changes {
			b.add(c)
		}
		b.changed = later(b.changed, newer.changed)
		if newer.due.After(due) {
			due = newer.due
		}
	}
	b.due = due
	r.pending[b.unit] = b
	return due, b.destinations()
}

func (r *Rollout) resetRetries(unit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.retries, unit)
}

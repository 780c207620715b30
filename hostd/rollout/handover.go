package rollout

import (
	"context"
	"sync"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// crew is what a Rollout shares with every Rollout that takes over from it
// at a reload: the context its restarts run under, ended only when hostd
// gives up waiting for them at a stop, and the signal that hostd stops.
type crew struct {
	ctx      context.Context
	abandon  context.CancelFunc
	stopping chan struct{}
	once     sync.Once
}

func newCrew() *crew {
	ctx, abandon := context.WithCancel(context.Background())
	return &crew{ctx: ctx, abandon: abandon, stopping: make(chan struct{})}
}

// stop says that hostd stops: no Rollout takes over.
func (c *crew) stop() { c.once.Do(func() { close(c.stopping) }) }

// HandOver makes next the Rollout for everything r still owes, at a reload:
// the batches waiting for their time (scheduled again under next's policy),
// and the units r is restarting now, which next leaves alone until those
// restarts end. What they lead to (a retry, the next batch) goes to next, as
// does anything submitted to r from now on. Call it before next's Run
// starts; r's Run then returns at once, without waiting for its restarts.
func (r *Rollout) HandOver(next *Rollout) {
	r.mu.Lock()
	next.mu.Lock()
	next.crew.abandon() // next's own crew is never used
	next.crew, next.stopping = r.crew, r.crew.stopping
	var moved []event.Pending
	now := next.opts.Now()
	for unit, b := range r.pending {
		if !next.manages(unit) {
			continue // its template is gone: nothing is owed any more
		}
		if have := next.pending[unit]; have != nil {
			for _, c := range have.changes {
				b.add(c)
			}
		}
		if !b.resumed {
			// The share of the splay scales to next's policy; a retry
			// keeps its backoff.
			b.due = next.batchDue(b)
		}
		next.pending[unit] = b
		moved = append(moved, event.Pending{Time: now, Unit: unit, Due: b.due, Cause: b.destinations()})
	}
	for unit := range r.busy {
		next.busy[unit] = true
	}
	for unit, n := range r.retries {
		next.retries[unit] = n
	}
	r.pending = map[string]*batch{}
	r.next = next
	next.mu.Unlock()
	r.mu.Unlock()
	for _, p := range moved {
		next.opts.Sink.Publish(p)
	}
	next.poke()
}

// release marks unit idle again in the Rollout that schedules it now.
func (r *Rollout) release(unit string) {
	r.mu.Lock()
	next := r.next
	delete(r.busy, unit)
	r.mu.Unlock()
	if next != nil {
		next.release(unit)
		return
	}
	r.poke()
}

func (r *Rollout) restarting() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.busy)
}

func (r *Rollout) successor() *Rollout {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.next
}

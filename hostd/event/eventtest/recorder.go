// Package eventtest records hostd's events for tests and lets a test wait
// for one. It only collects what a component publishes; it never acts on it.
package eventtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// Recorder is an event.Sink keeping every published event of type T (use
// event.Event for all of them).
type Recorder[T event.Event] struct {
	mu     sync.Mutex
	events []T
	taken  []bool // taken[i]: events[i] was returned by Take
	notify chan struct{}
}

// New returns an empty Recorder.
func New[T event.Event]() *Recorder[T] {
	return &Recorder[T]{notify: make(chan struct{}, 1)}
}

// Publish keeps e if it is a T.
func (r *Recorder[T]) Publish(e event.Event) {
	v, ok := e.(T)
	if !ok {
		return
	}
	r.mu.Lock()
	r.events = append(r.events, v)
	r.taken = append(r.taken, false)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// All returns a copy of the events kept so far.
func (r *Recorder[T]) All() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.events...)
}

// Len is how many events were kept so far: an index for WaitFor.
func (r *Recorder[T]) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// WaitFor returns the first event at index from or later that matches, and
// the index after it; it fails the test if none arrives within timeout.
func (r *Recorder[T]) WaitFor(t testing.TB, from int, timeout time.Duration, what string, match func(T) bool) (T, int) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		evs := r.All()
		for i := from; i < len(evs); i++ {
			if match(evs[i]) {
				return evs[i], i + 1
			}
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			t.Fatalf("no %s within %s; last events: %s", what, timeout, tail(evs, 15))
			var zero T
			return zero, from
		}
	}
}

// Take returns the first event kept in r that is an E and was not taken
// yet, and marks it taken: the next Take of an E returns the one after it,
// while events of other types wait for their own Take. It waits for one
// until ctx ends, and fails the test then. A taken event stays kept: All,
// Len and WaitFor still see it.
func Take[E, T event.Event](t testing.TB, ctx context.Context, r *Recorder[T]) E {
	t.Helper()
	for {
		r.mu.Lock()
		for i, e := range r.events {
			if v, ok := any(e).(E); ok && !r.taken[i] {
				r.taken[i] = true
				r.mu.Unlock()
				return v
			}
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-ctx.Done():
			var zero E
			t.Fatalf("no %T before the context ended (%v); events not taken: %s", zero, ctx.Err(), tail(r.Untaken(), 15))
			return zero
		}
	}
}

// Untaken returns a copy of the events kept so far that Take has not
// returned.
func (r *Recorder[T]) Untaken() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	var evs []T
	for i, e := range r.events {
		if !r.taken[i] {
			evs = append(evs, e)
		}
	}
	return evs
}

// tail formats the last n events, one per line, for a failure message.
func tail[T event.Event](evs []T, n int) string {
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "\n  %T%+v", e, e)
	}
	return b.String()
}

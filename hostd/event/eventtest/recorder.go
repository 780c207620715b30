// Package eventtest records hostd's events for tests and lets a test wait
// for one. It only collects what a component publishes; it never acts on it.
package eventtest

import (
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

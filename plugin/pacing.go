package plugin

import (
	"context"
	"sync"
	"time"
)

// The pace of the calls to the API. The API answers a client that calls too
// fast with 429 (or 400 "Rate limit exceeded") and publishes no limit, so
// every role's client finds its pace itself: an adaptive window of calls in
// flight that grows while the API answers and shrinks when it refuses for
// rate limiting (additive increase, multiplicative decrease). A copy of all
// sites keeps the window full; single calls (a copy of one site, a
// rotation) pass through the same window, as they count against the same
// limit at the API.

// initialCopyWindow is where the window of a new client starts.
const initialCopyWindow = 4

// windowCut is what a rate-limit refusal leaves of the window.
const windowCut = 0.75

// windowsPerStep is how many windows of answered calls grow the window by
// one. Growing by one per window, as TCP does, overshoots an API that counts
// calls per second: its refusals come only once the second's quota is spent.
const windowsPerStep = 4

// minCutSpacing is the least time between two cuts of the window. An API
// that counts calls per interval refuses every call until the interval
// ends; those refusals are one signal, not one per call, and cutting on each
// would empty the window just as the API takes calls again.
const minCutSpacing = time.Second

// adaptiveLimit is the window of API calls in flight of one client, and the
// gate of the workers of a copy of all sites.
type adaptiveLimit struct {
	mu       sync.Mutex
	ceiling  int
	window   float64
	inFlight int
	sent     uint64    // calls admitted so far; a call's number is its order
	cutAfter uint64    // calls numbered below this were sent before the last cut
	cutAt    time.Time // when the window was last cut
	workers  int       // copy workers admitted
	waiting  int       // of those, the ones waiting out a refusal's Retry-After
	wake     chan struct{}
	now      func() time.Time
}

func newAdaptiveLimit(ceiling int) *adaptiveLimit {
	ceiling = max(ceiling, 1)
	return &adaptiveLimit{
		ceiling: ceiling,
		window:  float64(min(initialCopyWindow, ceiling)),
		wake:    make(chan struct{}),
		now:     time.Now,
	}
}

// current is the number of calls the window admits at once.
func (l *adaptiveLimit) current() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slots()
}

// size is the window with its fraction.
func (l *adaptiveLimit) size() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.window
}

// slots is the window as whole calls. Caller holds mu.
func (l *adaptiveLimit) slots() int {
	return max(int(l.window), 1)
}

// signal wakes every waiter to look again. Caller holds mu.
func (l *adaptiveLimit) signal() {
	close(l.wake)
	l.wake = make(chan struct{})
}

// waitUntil waits until ready (called with mu held) holds, and returns with
// mu held; or returns the context's error without it.
func (l *adaptiveLimit) waitUntil(ctx context.Context, ready func() bool) error {
	for {
		l.mu.Lock()
		if ready() {
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// acquire waits for a free slot in the window and returns the call's number.
// A copy worker that calls again has stopped waiting out a refusal.
func (l *adaptiveLimit) acquire(ctx context.Context) (uint64, error) {
	if w := workerOf(ctx, l); w != nil {
		l.mu.Lock()
		l.stopWaiting(w)
		l.mu.Unlock()
	}
	if err := l.waitUntil(ctx, func() bool { return l.inFlight < l.slots() }); err != nil {
		return 0, err
	}
	defer l.mu.Unlock()
	l.inFlight++
	call := l.sent
	l.sent++
	return call, nil
}

// release frees the slot of a call and adapts the window to its outcome. A
// refusal of a call sent before the last cut, or within minCutSpacing of
// it, is the same congestion the cut answered.
func (l *adaptiveLimit) release(ctx context.Context, call uint64, o callOutcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	switch {
	case o == callAnswered:
		l.window = min(l.window+1/(l.window*windowsPerStep), float64(l.ceiling))
	case o == callRateLimited:
		if w := workerOf(ctx, l); w != nil && !w.waiting {
			w.waiting = true
			l.waiting++
		}
		if call >= l.cutAfter && l.now().Sub(l.cutAt) >= minCutSpacing {
			l.window = max(l.window*windowCut, 1)
			l.cutAfter = l.sent
			l.cutAt = l.now()
		}
	}
	l.signal()
}

// copyWorker is one worker of a copy of all sites as its window sees it;
// it rides in the context of the worker's calls.
type copyWorker struct {
	limit   *adaptiveLimit
	waiting bool // its last call was refused; guarded by limit.mu
}

type copyWorkerKey struct{}

// workerOf is the copy worker that makes a call through l, if any.
func workerOf(ctx context.Context, l *adaptiveLimit) *copyWorker {
	w, _ := ctx.Value(copyWorkerKey{}).(*copyWorker)
	if w == nil || w.limit != l {
		return nil
	}
	return w
}

// enterWorker admits a copy worker once the window can use it: while the
// workers not waiting out a refusal are fewer than the window plus one
// (ready for the next free slot). A worker waiting out a Retry-After thus
// lets another one in, and the window never idles while some sleep. The
// returned context carries the worker to its calls.
func (l *adaptiveLimit) enterWorker(ctx context.Context) (context.Context, *copyWorker, error) {
	if err := l.waitUntil(ctx, func() bool { return l.workers-l.waiting < l.slots()+1 }); err != nil {
		return nil, nil, err
	}
	defer l.mu.Unlock()
	l.workers++
	w := &copyWorker{limit: l}
	return context.WithValue(ctx, copyWorkerKey{}, w), w, nil
}

// leaveWorker ends a worker's turn (its site is done).
func (l *adaptiveLimit) leaveWorker(w *copyWorker) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopWaiting(w)
	l.workers--
	l.signal()
}

// stopWaiting marks w as no longer waiting out a refusal. Caller holds mu.
func (l *adaptiveLimit) stopWaiting(w *copyWorker) {
	if w.waiting {
		w.waiting = false
		l.waiting--
	}
}

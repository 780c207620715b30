package plugin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
)

// The pace of the calls to the API. The API answers a client that calls too
// fast with 429 (or 400 "Rate limit exceeded"), and publishes no limit, so
// every role's client finds its pace itself: an adaptive window of calls in
// flight that grows by one per window of answered calls and halves when the
// API refuses for rate limiting (additive increase, multiplicative decrease,
// as TCP does). A copy of all sites keeps the window full; single calls
// (a copy of one site, a rotation) pass through the same window, so they
// count against the same limit as the API does.

// initialCopyWindow is where the window of a new client starts.
const initialCopyWindow = 4

// rateLimitMessage is how the API words a rate limit it answers with 400.
const rateLimitMessage = "rate limit exceeded"

// maxPeekBytes bounds how much of a 400 answer is read to find that wording.
const maxPeekBytes = 64 << 10

// callOutcome is what one call tells the window.
type callOutcome int

const (
	callAnswered    callOutcome = iota // the API answered (any status but rate limiting or 5xx)
	callRateLimited                    // the API refused the call for its rate
	callFailed                         // 5xx or no answer: says nothing about the rate
)

func (o callOutcome) String() string {
	switch o {
	case callAnswered:
		return "answered"
	case callRateLimited:
		return "rate limited"
	}
	return "failed"
}

// adaptiveLimit is the window of API calls in flight of one client.
type adaptiveLimit struct {
	mu       sync.Mutex
	ceiling  int
	window   float64
	inFlight int
	sent     uint64        // calls admitted so far; a call's number is its order
	cutAfter uint64        // calls numbered below this were sent before the last cut
	wake     chan struct{} // closed when a slot frees or the window grows
}

func newAdaptiveLimit(ceiling int) *adaptiveLimit {
	ceiling = max(ceiling, 1)
	return &adaptiveLimit{
		ceiling: ceiling,
		window:  float64(min(initialCopyWindow, ceiling)),
		wake:    make(chan struct{}),
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

// acquire waits for a free slot in the window and returns the call's number.
func (l *adaptiveLimit) acquire(ctx context.Context) (uint64, error) {
	for {
		l.mu.Lock()
		if l.inFlight < l.slots() {
			l.inFlight++
			call := l.sent
			l.sent++
			l.mu.Unlock()
			return call, nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// release frees the slot of a call and adapts the window to its outcome. A
// refusal of a call sent before the last cut is the same congestion the cut
// answered, so the window halves at most once per window of calls.
func (l *adaptiveLimit) release(call uint64, o callOutcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	switch {
	case o == callAnswered:
		l.window = min(l.window+1/l.window, float64(l.ceiling))
	case o == callRateLimited && call >= l.cutAfter:
		l.window = max(l.window/2, 1)
		l.cutAfter = l.sent
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// limitedTransport sends every request through the window of its client.
type limitedTransport struct {
	base  http.RoundTripper
	limit *adaptiveLimit
}

// newAPIHTTPClient is the HTTP client of one role's API client: connections
// are kept for reuse (up to pool per host, so a copy at full window does not
// open a connection per call) and every call goes through the window.
func newAPIHTTPClient(limit *adaptiveLimit, pool int) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns = max(base.MaxIdleConns, pool)
	base.MaxIdleConnsPerHost = pool
	return &http.Client{Transport: &limitedTransport{base: base, limit: limit}}
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	call, err := t.limit.acquire(req.Context())
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.limit.release(call, callFailed)
		return nil, err
	}
	// The call holds its slot (and its connection) until its answer is
	// read and closed, so the next call finds the connection free.
	outcome := outcomeOf(resp)
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: func() { t.limit.release(call, outcome) }}
	return resp, nil
}

// releasingBody frees its call's slot when the answer is closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// closeIdle closes the kept connections of a client no longer used.
func (t *limitedTransport) closeIdle() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// outcomeOf classifies an answer. A 400 is read (and put back) to tell a
// rate limit from a bad request.
func outcomeOf(resp *http.Response) callOutcome {
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return callRateLimited
	case resp.StatusCode >= 500:
		return callFailed
	case resp.StatusCode != http.StatusBadRequest:
		return callAnswered
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeekBytes))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(body), rest), rest}
	if err == nil && strings.Contains(strings.ToLower(string(body)), rateLimitMessage) {
		return callRateLimited
	}
	return callAnswered
}

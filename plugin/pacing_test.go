package plugin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
)

// admit takes n calls through the limit and returns them in order.
func admit(t *testing.T, l *adaptiveLimit, n int) []uint64 {
	t.Helper()
	calls := make([]uint64, n)
	for i := range calls {
		call, err := l.acquire(context.Background())
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		calls[i] = call
	}
	return calls
}

func TestAdaptiveLimitGrowsWhileCallsSucceedUpToTheCeiling(t *testing.T) {
	l := newAdaptiveLimit(8)
	if got := l.current(); got != initialCopyWindow {
		t.Fatalf("starts at %d, want %d", got, initialCopyWindow)
	}
	for range 100 {
		for _, call := range admit(t, l, l.current()) {
			l.release(context.Background(), call, callAnswered)
		}
	}
	if got := l.current(); got != 8 {
		t.Fatalf("after 100 rounds of answered calls the window is %d, want the ceiling 8", got)
	}
}

func TestAdaptiveLimitShrinksOncePerSecondOnRateLimiting(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	l := newAdaptiveLimit(16)
	l.now = clock.Now
	for range 400 {
		for _, call := range admit(t, l, l.current()) {
			l.release(context.Background(), call, callAnswered)
		}
	}
	if got := l.current(); got != 16 {
		t.Fatalf("the window grew to %d, want the ceiling 16", got)
	}
	// Every call of the window was refused: that is one signal, not 16.
	for _, call := range admit(t, l, 16) {
		l.release(context.Background(), call, callRateLimited)
	}
	if got := l.current(); got != 12 {
		t.Fatalf("after a refused window the window is %d, want 12", got)
	}
	// Refused again within the second (the API's interval has not ended):
	// the same signal.
	call := admit(t, l, 1)
	l.release(context.Background(), call[0], callRateLimited)
	if got := l.current(); got != 12 {
		t.Fatalf("a refusal within a second of the cut moved the window to %d", got)
	}
	// A second later, still refused: cut again, never below 1.
	for range 20 {
		clock.Add(time.Second)
		call := admit(t, l, 1)
		l.release(context.Background(), call[0], callRateLimited)
	}
	if got := l.current(); got != 1 {
		t.Fatalf("the window fell to %d, want 1", got)
	}
	// A failed call (5xx, connection) neither grows nor shrinks it.
	before := l.size()
	call = admit(t, l, 1)
	l.release(context.Background(), call[0], callFailed)
	if got := l.size(); got != before {
		t.Fatalf("a failed call moved the window from %v to %v", before, got)
	}
}

// A copy has more workers than its window has slots; the window lets in as
// many as it can use, and one more for each worker waiting out a refusal.
func TestAdaptiveLimitAdmitsWorkersTheWindowCanUse(t *testing.T) {
	l := newAdaptiveLimit(8) // window 4: admits 5 workers
	l.now = clocktest.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)).Now
	var workers []*copyWorker
	var ctxs []context.Context
	for range 5 {
		ctx, w, err := l.enterWorker(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		workers, ctxs = append(workers, w), append(ctxs, ctx)
	}
	full, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := l.enterWorker(full); !errors.Is(err, context.Canceled) {
		t.Fatalf("a sixth worker got in: %v", err)
	}
	// Two workers' calls are refused (the window shrinks to 3): they wait
	// out the Retry-After, so another worker may work meanwhile.
	for _, ctx := range ctxs[:2] {
		call, err := l.acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		l.release(ctx, call, callRateLimited)
	}
	_, w6, err := l.enterWorker(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Its retry makes it a worker again, and the gate is full once more.
	if _, err := l.acquire(ctxs[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.enterWorker(full); !errors.Is(err, context.Canceled) {
		t.Fatal("the gate stayed open after the waiting worker called again")
	}
	// Two sites done: room for one worker again (4 active at a window of 3).
	l.leaveWorker(w6)
	l.leaveWorker(workers[2])
	if _, _, err := l.enterWorker(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAdaptiveLimitWaitsForAFreeSlotOrTheCaller(t *testing.T) {
	l := newAdaptiveLimit(1)
	first := admit(t, l, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("a full window admitted a call: %v", err)
	}
	admitted := make(chan uint64)
	go func() {
		call, err := l.acquire(context.Background())
		if err != nil {
			t.Error(err)
		}
		admitted <- call
	}()
	l.release(context.Background(), first[0], callAnswered)
	l.release(context.Background(), <-admitted, callAnswered)
}

func TestLimitedTransportKnowsRateLimitingFromItsAnswers(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   callOutcome
	}{
		{http.StatusOK, `{"data":[]}`, callAnswered},
		{http.StatusNotFound, `{"message":"site not found"}`, callAnswered},
		{http.StatusTooManyRequests, `{"message":"slow down"}`, callRateLimited},
		{http.StatusBadRequest, `{"message":"Rate limit exceeded"}`, callRateLimited},
		{http.StatusBadRequest, `{"message":"limit must be an integer"}`, callAnswered},
		{http.StatusServiceUnavailable, `{"message":"down"}`, callFailed},
	} {
		srv := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tc.status)
			_, _ = io.WriteString(w, tc.body)
		}))
		l := newAdaptiveLimit(8)
		before := l.size()
		resp, err := newAPIHTTPClient(l, 8).Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != tc.body {
			t.Fatalf("%d: the body after the look at it: %q, %v", tc.status, body, err)
		}
		var got callOutcome
		switch after := l.size(); {
		case after > before:
			got = callAnswered
		case after < before:
			got = callRateLimited
		default:
			got = callFailed
		}
		if got != tc.want {
			t.Fatalf("%d %s: taken as %v, want %v", tc.status, tc.body, got, tc.want)
		}
	}
}

package plugin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
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

func TestAdaptiveLimit_GrowsWhileCallsSucceedUpToTheCeiling(t *testing.T) {
	l := newAdaptiveLimit(8)
	if got := l.current(); got != initialCopyWindow {
		t.Fatalf("starts at %d, want %d", got, initialCopyWindow)
	}
	for range 100 {
		for _, call := range admit(t, l, l.current()) {
			l.release(call, callAnswered)
		}
	}
	if got := l.current(); got != 8 {
		t.Fatalf("after 100 rounds of answered calls the window is %d, want the ceiling 8", got)
	}
}

func TestAdaptiveLimit_HalvesOncePerWindowOnRateLimiting(t *testing.T) {
	l := newAdaptiveLimit(16)
	for range 200 {
		for _, call := range admit(t, l, l.current()) {
			l.release(call, callAnswered)
		}
	}
	calls := admit(t, l, 16)
	// Every call of the window was refused: that is one signal, not 16.
	for _, call := range calls {
		l.release(call, callRateLimited)
	}
	if got := l.current(); got != 8 {
		t.Fatalf("after a refused window the window is %d, want 8", got)
	}
	// A call sent after the cut and refused again cuts again.
	later := admit(t, l, 1)
	l.release(later[0], callRateLimited)
	if got := l.current(); got != 4 {
		t.Fatalf("after a second refusal the window is %d, want 4", got)
	}
	for range 10 {
		call := admit(t, l, 1)
		l.release(call[0], callRateLimited)
	}
	if got := l.current(); got != 1 {
		t.Fatalf("the window fell to %d, want at least 1", got)
	}
	// A failed call (5xx, connection) neither grows nor shrinks it.
	call := admit(t, l, 1)
	l.release(call[0], callFailed)
	if got := l.current(); got != 1 {
		t.Fatalf("a failed call moved the window to %d", got)
	}
}

func TestAdaptiveLimit_WaitsForAFreeSlotOrTheCaller(t *testing.T) {
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
	l.release(first[0], callAnswered)
	l.release(<-admitted, callAnswered)
}

func TestLimitedTransport_KnowsRateLimitingFromItsAnswers(t *testing.T) {
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

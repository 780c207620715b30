package vaultproxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
)

// delays records the failure delays the proxy asks for.
type delays struct {
	mu  sync.Mutex
	all []time.Duration
}

func (d *delays) record(_ context.Context, v time.Duration) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, v)
	return nil
}

func (d *delays) take() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.all
	d.all = nil
	return out
}

// Answers that make consul-template retry are delayed by a random part of
// FailureJitter, so hosts that failed together retry apart; answers it does
// not retry are never delayed.
func TestAnswersSayingVaultIsUnavailableAreJittered(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/sealed":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/v1/standby":
			w.WriteHeader(http.StatusTooManyRequests)
		case "/v1/denied":
			w.WriteHeader(http.StatusForbidden)
		case "/v1/missing":
			w.WriteHeader(http.StatusNotFound)
		}
		fmt.Fprint(w, `{"errors":[]}`)
	}))
	t.Cleanup(upstream.Close)
	random := 0.25
	s := newSetup(t, upstream.URL, Options{FailureJitter: 4 * time.Second, Clock: stage.Clock{Rand: func() float64 { return random }}})

	for path, want := range map[string]string{
		"/v1/sealed":  "[1s]",
		"/v1/standby": "[1s]",
		"/v1/ok":      "[]",
		"/v1/denied":  "[]",
		"/v1/missing": "[]",
	} {
		s.get(t, path, nil)
		if got := fmt.Sprint(s.delays.take()); got != want {
			t.Errorf("%s: delays %s, want %s", path, got, want)
		}
	}

	random = 0.999
	s.tokens.set("")
	if code, _ := s.get(t, "/v1/ok", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("status %d without a token, want 503", code)
	}
	if got := s.delays.take(); len(got) != 1 || got[0] < 3990*time.Millisecond || got[0] >= 4*time.Second {
		t.Fatalf("not logged in: delays %v, want one just under the 4s bound", got)
	}
}

func TestUnreachableVaultAnswerIsJittered(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	addr := down.URL
	down.Close()
	s := newSetup(t, addr, Options{Clock: stage.Clock{Rand: func() float64 { return 0.5 }}})
	if code, _ := s.get(t, "/v1/secret/data/kv", nil); code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", code)
	}
	if got := fmt.Sprint(s.delays.take()); got != fmt.Sprint([]time.Duration{DefaultFailureJitter / 2}) {
		t.Fatalf("delays %s, want half the default jitter", got)
	}
}

func TestNegativeFailureJitterTurnsTheDelayOff(t *testing.T) {
	s := newSetup(t, "", Options{FailureJitter: -1})
	s.tokens.set("")
	s.get(t, "/v1/secret/data/kv", nil)
	if got := s.delays.take(); len(got) != 0 {
		t.Fatalf("delays %v, want none", got)
	}
}

// The proxy's own failure delay gives up when the request is gone.
func TestFailureDelayEndsWithTheRequest(t *testing.T) {
	p, err := New(Options{Upstream: "http://127.0.0.1:1", Tokens: newTokens(tokenA)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("a delay for a request already gone returned %v, want it to end with the request", err)
	}
}

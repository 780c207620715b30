package sigscisim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// postCreate sends one create for acme/www whose client gives up after wait.
func (f *fixture) postCreate(wait time.Duration) error {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return f.postCreateCtx(ctx)
}

// postCreateCtx sends one create for acme/www whose client gives up when ctx ends.
func (f *fixture) postCreateCtx(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+APIPrefix+"/corps/acme/sites/www/agentKeys", nil)
	if err != nil {
		return err
	}
	req.Header.Set("x-api-user", userA)
	req.Header.Set("x-api-token", tokenA)
	resp, err := freshConnClient().Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// waitForSets polls until the site www of acme has n key sets.
func (f *fixture) waitForSets(n int, within time.Duration) {
	f.t.Helper()
	poll.Within(f.t, within, 5*time.Millisecond, fmt.Sprintf("www to have %d key sets", n), func() (bool, string) {
		got := len(f.sim.KeySets(corpA, "www"))
		return got == n, fmt.Sprintf("%d key sets", got)
	})
}

func TestSlowCreateLandsAfterItsClientLeft(t *testing.T) {
	f := start(t, testSeed())
	f.sim.SetEndpointLatency(EndpointCreateKeySet, 300*time.Millisecond, false)

	began := time.Now()
	if status, _, _ := f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA); status != http.StatusOK {
		t.Fatal(status)
	}
	if took := time.Since(began); took >= 300*time.Millisecond {
		t.Errorf("a call of another endpoint took %s: only creates are slow", took)
	}

	if err := f.postCreate(20 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the slow create answered its impatient client: %v", err)
	}
	if n := len(f.sim.KeySets(corpA, "www")); n != 1 {
		t.Fatalf("the create landed before its latency: %d sets", n)
	}
	f.waitForSets(2, 10*time.Second) // the server finished the work its client gave up on

	f.sim.SetEndpointLatency(EndpointCreateKeySet, 0, false)
	if fl := f.sim.Faults(); fl.EndpointLatency != nil {
		t.Errorf("latency 0 did not turn it off: %+v", fl.EndpointLatency)
	}
}

func TestSlowAnswerOfACreateThatLanded(t *testing.T) {
	f := start(t, testSeed())
	f.sim.SetEndpointLatency(EndpointCreateKeySet, time.Hour, true)
	ctx, leave := context.WithCancel(context.Background())
	defer leave()
	done := make(chan error, 1)
	go func() { done <- f.postCreateCtx(ctx) }()
	f.waitForSets(2, 10*time.Second) // landed at once, the answer still held
	select {
	case err := <-done:
		t.Fatalf("the create answered while its answer is held: %v", err)
	default:
	}
	if got := f.sim.Calls(EndpointCreateKeySet); got != 1 {
		t.Errorf("creates counted: %d", got)
	}
	// The client leaving ends the wait: the test would hang in srv.Close
	// otherwise.
	if err := f.postCreate(50 * time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second create: %v", err)
	}
	f.waitForSets(3, 10*time.Second)

	leave()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the first create's client: %v", err)
	}
}

func TestEndpointLatencyOverHTTPAndInFaults(t *testing.T) {
	f := start(t, testSeed())
	body := `{"latency":"3s","endpoint":"` + EndpointCreateKeySet + `","answerOnly":true}`
	if status, b := f.control(http.MethodPost, "/sim/latency", body); status != http.StatusOK {
		t.Fatalf("POST /sim/latency: %d %s", status, b)
	}
	fl := f.sim.Faults()
	if el := fl.EndpointLatency; el == nil || el.Endpoint != EndpointCreateKeySet || el.Latency != Duration(3*time.Second) || !el.AnswerOnly || fl.Latency != 0 {
		t.Fatalf("faults: %+v, endpoint latency %+v", fl, fl.EndpointLatency)
	}
	fl.EndpointLatency.Latency = 0
	if f.sim.Faults().EndpointLatency.Latency == 0 {
		t.Error("Faults returned the simulator's own endpoint latency, not a copy")
	}
	if status, b := f.control(http.MethodGet, "/sim/faults", ""); status != http.StatusOK || !strings.Contains(string(b), `"endpointLatency":{"endpoint":"POST`) {
		t.Errorf("GET /sim/faults: %d %s", status, b)
	}
	for _, bad := range []string{
		`{"latency":"1s","endpoint":"GET /nothing"}`,
		`{"latency":"-1s","endpoint":"` + EndpointCreateKeySet + `"}`,
		`{"latency":"1s","answerOnly":true}`,
	} {
		if status, b := f.control(http.MethodPost, "/sim/latency", bad); status != http.StatusBadRequest || messageOf(t, b) == "" {
			t.Errorf("POST /sim/latency %s: %d %s", bad, status, b)
		}
	}
	if err := f.sim.SetFaults(Faults{EndpointLatency: &EndpointLatency{Endpoint: "nope", Latency: Duration(time.Second)}}); err == nil {
		t.Error("SetFaults accepted an unknown endpoint")
	}
	defer func() {
		if recover() == nil {
			t.Error("SetEndpointLatency accepted an unknown endpoint")
		}
	}()
	f.sim.SetEndpointLatency("GET /nothing", time.Second, false)
}

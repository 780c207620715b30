package rollout_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// waitIdle waits until no restart of r is under way. A batch publishes
// what its unit runs before it records its end, and Observe passes over a
// unit whose restart has not ended.
func waitIdle(t *testing.T, r *rollout.Rollout) {
	t.Helper()
	poll.Within(t, 10*time.Second, time.Millisecond, "the restart to end", func() (bool, string) {
		n := r.Restarting()
		return n == 0, fmt.Sprintf("%d units restarting", n)
	})
}

// The agent was stopped when its file changed, so it was not restarted;
// an operator starts it by hand later. Observe sees that it runs the new
// file, without restarting it.
func TestObserveSeesAnAgentStartedByHand(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	in := h.start(t.TempDir(), rollout.Options{})
	in.rollout.Reconcile(h.ctx, h.watched())
	eventtest.Take[event.Running](t, h.ctx, in.events)
	if err := h.m.StopUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}
	in.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	if r := eventtest.Take[event.Restart](t, h.ctx, in.events); r.Result != event.ResultNotRunning {
		t.Fatalf("restart of the stopped agent: %+v", r)
	}
	if r := eventtest.Take[event.Running](t, h.ctx, in.events); len(r.Files) != 0 {
		t.Fatalf("the stopped agent runs on %+v", r.Files)
	}
	waitIdle(t, in.rollout)

	if err := h.m.StartUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}
	h.waitStarts(2) // newHost's start, and this one
	in.rollout.Observe(h.ctx)
	want := running.Digest([]byte("good 2\n"))
	if r := eventtest.Take[event.Running](t, h.ctx, in.events); len(r.Files) != 1 || r.Files[0].Digest != want || r.Files[0].Since.IsZero() {
		t.Fatalf("after the start by hand the agent runs on %+v, want digest %s", r.Files, want)
	}
	if h.starts() != 2 {
		t.Fatal("Observe restarted the agent")
	}
}

// The restart waits for a window; an operator restarts the agent by hand
// meanwhile. Observe sees it run the new file; the batch stays scheduled.
func TestObserveSeesAnAgentRestartedByHandWhileItsRestartWaits(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{})
	in := h.start(t.TempDir(), rollout.Options{Window: laterWindow()})
	in.rollout.Reconcile(h.ctx, h.watched())
	eventtest.Take[event.Running](t, h.ctx, in.events)
	in.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	eventtest.Take[event.Pending](t, h.ctx, in.events)

	if err := h.m.StopUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}
	if err := h.m.StartUnit(h.ctx, h.unit); err != nil {
		t.Fatal(err)
	}
	h.waitStarts(2) // newHost's start, and the operator's
	in.rollout.Observe(h.ctx)
	want := running.Digest([]byte("good 2\n"))
	if r := eventtest.Take[event.Running](t, h.ctx, in.events); len(r.Files) != 1 || r.Files[0].Digest != want {
		t.Fatalf("after the restart by hand the agent runs on %+v, want digest %s", r.Files, want)
	}
}

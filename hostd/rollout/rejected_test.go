package rollout_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
)

// rejectBad submits content the agent refuses and waits for the rollback.
func (h *host) rejectBad(content string) {
	h.t.Helper()
	h.rollout.Submit(h.writeConf("agent.conf", content))
	if first := eventtest.Take[event.Restart](h.t, h.ctx, h.events); first.Result != event.ResultFailed {
		h.t.Fatalf("restart on %q: %+v, want a failed job", content, first)
	}
	if second := eventtest.Take[event.Restart](h.t, h.ctx, h.events); second.Result != event.ResultRolledBack {
		h.t.Fatalf("rollback of %q: %+v", content, second)
	}
}

// Content the agent did not survive is refused for RetryRejectedAfter, then
// tried again: the agent may have been fixed since.
func TestRejectedContentIsTriedAgainAfterAWhile(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(start)
	h := newHost(t, "refuse-start", rollout.Options{RetryRejectedAfter: time.Hour, Clock: stage.Clock{Now: clock.Now, Until: clock.Until}})
	dest := filepath.Join(h.dir, "agent.conf")

	h.rejectBad("bad key")
	clock.Set(start.Add(59 * time.Minute))
	if err := h.rollout.Refuse(dest, []byte("bad key\n")); err == nil {
		t.Fatal("rejected content written again within the hour")
	}
	clock.Set(start.Add(time.Hour))
	if err := h.rollout.Refuse(dest, []byte("bad key\n")); err != nil {
		t.Fatalf("rejected content still refused after an hour: %v", err)
	}
	// Written again, it is restarted on (not put back without a restart).
	h.rejectBad("bad key")
}

// hostd refresh: the operator wants rejected content tried again now.
func TestRetryRejectedTriesTheContentNow(t *testing.T) {
	h := newHost(t, "refuse-start", rollout.Options{})
	dest := filepath.Join(h.dir, "agent.conf")

	h.rejectBad("bad key")
	if err := h.rollout.Refuse(dest, []byte("bad key\n")); err == nil {
		t.Fatal("rejected content not refused")
	}
	h.rollout.RetryRejected()
	if err := h.rollout.Refuse(dest, []byte("bad key\n")); err != nil {
		t.Fatalf("refused after RetryRejected: %v", err)
	}
	h.rejectBad("bad key")
}

// The content rejected is what the unit was restarted with, even when a
// newer render lands during the health check (t0 write N1, t1 restart on
// N1, t2 write N2, t3 the check on N1 fails): N1 is refused, N2 is not.
func TestRejectedContentIsWhatTheUnitRanOn(t *testing.T) {
	h := newHostWith(t, "accept", 10*time.Second, func(dir string) rollout.Options {
		// The check holds the health check open until the test lets it
		// go, then judges the content the agent started with.
		script := `touch "$0/check-started"; while [ ! -e "$0/release" ]; do sleep 0.05; done; grep -q good "$0/loaded"`
		return rollout.Options{Check: &rollout.Check{Command: []string{"/bin/sh", "-c", script, dir}, Timeout: 30 * time.Second}}
	})
	dest := filepath.Join(h.dir, "agent.conf")

	h.rollout.Submit(h.writeConf("agent.conf", "bad N1")) // t0, then t1: the restart on N1
	h.waitFile("check-started")
	h.rollout.Submit(h.writeConf("agent.conf", "good N2")) // t2: a refresh during the check
	h.touch("release")                                     // t3: the check on N1 fails

	if first := eventtest.Take[event.Restart](t, h.ctx, h.events); first.Result != event.ResultUnhealthy {
		t.Fatalf("restart on N1: %+v", first)
	}
	if second := eventtest.Take[event.Restart](t, h.ctx, h.events); second.Result != event.ResultRolledBack {
		t.Fatalf("rollback: %+v", second)
	}
	if err := h.rollout.Refuse(dest, []byte("bad N1\n")); err == nil {
		t.Error("N1, the content the agent failed on, is not refused")
	}
	if err := h.rollout.Refuse(dest, []byte("good N2\n")); err != nil {
		t.Errorf("N2, written during the check and never run, is refused: %v", err)
	}
	// The batch queued for N2 runs next, on the restored file.
	if next := eventtest.Take[event.Restart](t, h.ctx, h.events); next.Result != event.ResultDone || next.RolledBack {
		t.Fatalf("the batch queued during the check: %+v", next)
	}
}

// waitFile waits until name exists in the agent's directory.
func (h *host) waitFile(name string) {
	h.t.Helper()
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		if _, err := os.Stat(filepath.Join(h.dir, name)); err == nil {
			return
		}
		select {
		case <-ticker.C:
		case <-h.ctx.Done():
			h.t.Fatalf("%s never appeared", name)
		}
	}
}

// A batch queued during a failing restart was made against the content that
// failed (its Previous is N1). If it fails too, its rollback must put back
// what the unit runs on after the first rollback, not N1.
func TestBatchQueuedDuringARollbackRollsBackToTheRestoredContent(t *testing.T) {
	h := newHostWith(t, "accept", 10*time.Second, func(dir string) rollout.Options {
		// The first check waits for the test; checks 1 and 3 fail, so
		// the first batch and the one queued during it are rolled back.
		script := `n=$(( $(cat "$0/checks" 2>/dev/null || echo 0) + 1 )); echo $n > "$0/checks"
if [ $n -eq 1 ]; then touch "$0/check-started"; while [ ! -e "$0/release" ]; do sleep 0.05; done; fi
[ $n -ne 1 ] && [ $n -ne 3 ]`
		return rollout.Options{Check: &rollout.Check{Command: []string{"/bin/sh", "-c", script, dir}, Timeout: 30 * time.Second}}
	})

	h.rollout.Submit(h.writeConf("agent.conf", "bad N1"))
	h.waitFile("check-started")
	h.rollout.Submit(h.writeConf("agent.conf", "bad N2")) // Previous: N1
	h.touch("release")

	for i, want := range []string{event.ResultUnhealthy, event.ResultRolledBack, event.ResultUnhealthy, event.ResultRolledBack} {
		if r := eventtest.Take[event.Restart](t, h.ctx, h.events); r.Result != want {
			t.Fatalf("event %d: %+v, want %s", i+1, r, want)
		}
	}
	if got := h.readConf("agent.conf"); got != "good 1" {
		t.Fatalf("agent.conf = %q after both rollbacks, want %q (what the agent ran on before N1)", got, "good 1")
	}
}

package rollout_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
)

// The agent runs 2 s on keys it cannot use before it exits: a health check
// that wants it up for 4 s sees it die and rolls the keys back.
func TestStableForCatchesAnAgentThatDiesLater(t *testing.T) {
	h := newHost(t, "die-later", rollout.Options{StableFor: 4 * time.Second, WatchInterval: 200 * time.Millisecond, ActiveTimeout: 5 * time.Second})

	h.rollout.Submit(h.writeConf("agent.conf", "bad key"))
	first := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if first.Result != event.ResultUnhealthy {
		t.Fatalf("restart on keys the agent dies on after 2 s: %+v, want unhealthy", first)
	}
	t.Logf("caught after %s: %s", first.Duration, first.Err)
	if second := eventtest.Take[event.Restart](t, h.ctx, h.events); second.Result != event.ResultRolledBack {
		t.Fatalf("rollback: %+v", second)
	}
	if got := h.readConf("agent.conf"); got != "good 1" {
		t.Fatalf("agent.conf = %q after the rollback", got)
	}
}

// checkCommand passes when agent.conf in dir says "good" and HOSTD_UNIT
// names the agent; else it complains on stderr, with a key-like word that
// must not reach the error text, and exits 1.
func checkCommand(dir string) []string {
	script := `grep -q good "$0/agent.conf" && [ "$HOSTD_UNIT" = fakeagent.service ] && exit 0
echo "some noise" >&2
echo "agent refused key AKIAIOSFODNN7EXAMPLE1234 for $HOSTD_UNIT" >&2
exit 1`
	return []string{"/bin/sh", "-c", script, dir}
}

// The agent stays up on any keys, but the operator's check says the new
// ones do not work: rolled back, and the check passes on the restored ones.
func TestFailingCheckRollsBack(t *testing.T) {
	h := newHostWith(t, "exit", 10*time.Second, func(dir string) rollout.Options {
		return rollout.Options{Check: &rollout.Check{Command: checkCommand(dir), Timeout: 10 * time.Second}}
	})

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	if r := eventtest.Take[event.Restart](t, h.ctx, h.events); r.Result != event.ResultDone {
		t.Fatalf("restart with a passing check: %+v", r)
	}

	h.rollout.Submit(h.writeConf("agent.conf", "wrong 3")) // the agent runs on it
	first := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if first.Result != event.ResultUnhealthy || !strings.Contains(first.Err, "check /bin/sh failed (exit status 1)") ||
		!strings.Contains(first.Err, `stderr: "agent refused key [redacted] for fakeagent.service"`) {
		t.Fatalf("restart with a failing check: %+v", first)
	}
	if strings.Contains(first.Err, "AKIA") || strings.Contains(first.Err, "noise") || strings.Contains(first.Err, "grep") {
		t.Fatalf("the check's error text shows more than the last scrubbed stderr line: %s", first.Err)
	}
	if second := eventtest.Take[event.Restart](t, h.ctx, h.events); second.Result != event.ResultRolledBack || second.Err == "" {
		t.Fatalf("rollback after a failing check: %+v", second)
	}
	if got := h.readConf("agent.conf"); got != "good 2" {
		t.Fatalf("agent.conf = %q after the rollback, want %q", got, "good 2")
	}
}

func TestCheckThatHangsIsAFailure(t *testing.T) {
	h := newHost(t, "exit", rollout.Options{Check: &rollout.Check{Command: []string{"/bin/sh", "-c", "sleep 60"}, Timeout: 300 * time.Millisecond}})

	h.rollout.Submit(h.writeConf("agent.conf", "good 2"))
	first := eventtest.Take[event.Restart](t, h.ctx, h.events)
	if first.Result != event.ResultUnhealthy || !strings.Contains(first.Err, "did not finish within 300ms") {
		t.Fatalf("restart with a hanging check: %+v", first)
	}
	t.Logf("check timed out; restart and check took %s", first.Duration)
	// The rollback's check hangs too: the unit counts as not healthy on the
	// restored files either.
	if second := eventtest.Take[event.Restart](t, h.ctx, h.events); second.Result != event.ResultRollbackFailed {
		t.Fatalf("rollback with a hanging check: %+v", second)
	}
}

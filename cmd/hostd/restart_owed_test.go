package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest/agenthost"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
	"github.com/sigsci-keys/sigsci-keys/internal/selfexec"
)

// These tests kill hostd for real (SIGKILL: no hand-over, no grace) with a
// restart of the agent owed, and start it again: the next hostd must find
// out from systemd and the files alone (and its state directory) that the
// agent runs on older content, and restart it.

// host is the agent's host, and the status socket and state directory
// hostd processes share across restarts.
type host struct {
	*agenthost.Host
	t      *testing.T
	socket string
	state  string
	starts string // the agent's ExecStartPre appends a line here at every start
}

// newHost starts the agent (with extra [Service] lines) on a hand-written
// agent.conf it accepts. The agent stays up only on a secret key starting
// "S-" and records every start in h.starts.
func newHost(t *testing.T, service string) *host {
	t.Helper()
	starts := filepath.Join(t.TempDir(), "starts")
	a := agenthost.Start(t, service+fmt.Sprintf("ExecStartPre=/bin/sh -c 'echo start >> %s'\n", starts))
	return &host{Host: a, t: t, socket: filepath.Join(a.Dir, "hostd.sock"), state: t.TempDir(), starts: starts}
}

// hostd runs hostd with restartSettings until the test kills it.
func (h *host) hostd(restartSettings string) *selfexec.Process {
	h.t.Helper()
	path := writeConfig(h.t, h.Dir, h.Config(h.socket, `active_timeout = "3s"`, restartSettings))
	return startHostd(h.t, path, "STATE_DIRECTORY="+h.state, "DBUS_SESSION_BUS_ADDRESS="+h.Manager.BusAddress())
}

// kill SIGKILLs hostd and waits until it is gone.
func kill(t *testing.T, hostd *selfexec.Process) {
	t.Helper()
	hostd.Signal(t, os.Kill)
	hostd.Wait(t, "SIGKILL", waitFor)
}

// waitUnit polls hostd's status until the agent's entry satisfies ok.
func (h *host) waitUnit(what string, ok func(status.Unit) bool) status.Unit {
	h.t.Helper()
	snap := hosttest.WaitStatus(h.t, h.socket, what, func(s status.Snapshot) bool { return len(s.Units) > 0 && ok(s.Units[0]) })
	return snap.Units[0]
}

func (h *host) waitConf(want string) {
	h.t.Helper()
	hosttest.WaitFile(h.t, h.Conf, want)
}

func (h *host) startCount() int {
	b, _ := os.ReadFile(h.starts)
	return strings.Count(string(b), "start\n")
}

// laterWindow is a maintenance window that opens hours from now.
func laterWindow() string {
	start := time.Now().UTC().Add(3 * time.Hour)
	return fmt.Sprintf("maintenance_window {\n    start = %q\n    end = %q\n    timezone = \"UTC\"\n  }", start.Format("15:00"), start.Add(time.Hour).Format("15:00"))
}

func TestARestartOwedSurvivesASIGKILLOfHostd(t *testing.T) {
	h := newHost(t, "")

	// The new keys are written; their restart waits for tonight's window.
	first := h.hostd(laterWindow())
	h.waitConf(agenthost.KeysOne)
	h.waitUnit("a restart scheduled", func(u status.Unit) bool { return !u.PendingDue.IsZero() })
	kill(t, first)
	if n := h.startCount(); n != 1 {
		t.Fatalf("the agent started %d times before the window", n)
	}

	// The next hostd (whose window is open now) restarts the agent,
	// although the file it renders is already up to date.
	started := time.Now()
	h.hostd("")
	u := h.waitUnit("the owed restart", func(u status.Unit) bool { return u.Restarts >= 1 })
	owed := time.Since(started)
	if u.LastResult != event.ResultDone || h.startCount() != 2 {
		t.Fatalf("the owed restart: %+v, agent started %d times", u, h.startCount())
	}
	// What the restarted agent runs on is recorded once its process is
	// read, just after the restart's result: until then status shows
	// nothing for it.
	h.waitUnit("the agent running on the new keys", func(u status.Unit) bool {
		return len(u.RunningOn) == 1 && u.RunningOn[0].Digest == running.Digest([]byte(agenthost.KeysOne))
	})
	t.Logf("from the start of the next hostd to the owed restart of the agent: %s", owed.Round(time.Millisecond))
}

// The negative: the agent started after its file got its content; a new
// hostd finds nothing owed and leaves the agent alone.
func TestAnAgentStartedAfterItsFileIsLeftAloneByTheNextHostd(t *testing.T) {
	h := newHost(t, "")
	first := h.hostd("")
	h.waitConf(agenthost.KeysOne)
	// Killed once the restart has settled (what the agent runs on is
	// recorded): a kill between the restart and its record leaves an
	// unfinished batch, which the next hostd checks (and counts), the case
	// TestARestartCutShortByASIGKILLIsRolledBackByTheNextHostd covers.
	h.waitUnit("the restart onto the new keys, settled", func(u status.Unit) bool {
		return u.Restarts >= 1 && u.LastResult == event.ResultDone && len(u.RunningOn) == 1 && u.RunningOn[0].Digest == running.Digest([]byte(agenthost.KeysOne))
	})
	kill(t, first)

	h.hostd("")
	u := h.waitUnit("what the agent runs on", func(u status.Unit) bool { return len(u.RunningOn) == 1 && u.RunningOn[0].Digest != "" })
	if u.RunningOn[0].Digest != running.Digest([]byte(agenthost.KeysOne)) {
		t.Errorf("the agent runs on %+v, want the digest of its keys", u.RunningOn)
	}
	if u.Restarts != 0 || !u.PendingDue.IsZero() || h.startCount() != 2 {
		t.Errorf("the next hostd restarted an agent that runs on its current file: %+v, %d starts", u, h.startCount())
	}
}

// hostd killed in the middle of a restart onto keys the agent does not
// survive: systemd finishes the job on its own and the agent crash-loops.
// The next hostd checks the unfinished restart and rolls it back.
func TestARestartCutShortByASIGKILLIsRolledBackByTheNextHostd(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, fmt.Sprintf("Restart=always\nRestartSec=100ms\nExecStartPre=/bin/sh -c 'while [ ! -e %s ]; do sleep 0.02; done'\n", gate))
	first := h.hostd("")
	h.waitUnit("the restart onto the first keys", func(u status.Unit) bool { return u.Restarts >= 1 && u.LastResult == event.ResultDone })

	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}
	h.Vault.Write("kv/agent", map[string]any{"accessKey": "A3", "secretKey": "broken", "rotation_period": 60, "ttl": 1})
	h.waitConf(agenthost.KeysBroken)
	h.waitUnit("a restart under way", func(u status.Unit) bool { return u.ActiveState == "activating" })
	kill(t, first)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	h.hostd("")
	h.waitConf(agenthost.KeysOne)
	u := h.waitUnit("the rollback", func(u status.Unit) bool { return u.RolledBack })
	if u.LastResult != event.ResultRolledBack {
		t.Fatalf("at the next start: %+v", u)
	}
	h.waitUnit("the agent up on the previous keys", func(u status.Unit) bool { return u.ActiveState == "active" && u.SubState == "running" })
	t.Logf("from the start of the next hostd to the agent rolled back: %s", time.Since(started).Round(time.Millisecond))
}

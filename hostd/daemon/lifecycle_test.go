package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest/agenthost"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// These tests run hostd through the moments of its life that must not
// depend on Vault or on a restart batch: starting during a Vault outage,
// reloading while the agent restarts slowly, stopping while a restart fails.

// agentHost is the agent's host and a connection to its user manager.
type agentHost struct {
	*agenthost.Host
	t    *testing.T
	conn *restart.Conn
}

// newAgentHost installs and starts agent.service with extra [Service]
// lines, on a hand-written agent.conf the agent accepts.
func newAgentHost(t *testing.T, service string) *agentHost {
	t.Helper()
	h := &agentHost{Host: agenthost.Start(t, service), t: t}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", h.Manager.BusAddress())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := restart.Dial(ctx, restart.Options{Bus: restart.UserBus, Address: h.Manager.BusAddress()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	h.conn = conn
	return h
}

// waitAgent polls the agent's state until ok holds, for 30 s at most.
func (h *agentHost) waitAgent(what string, ok func(restart.State) bool) restart.State {
	h.t.Helper()
	var st restart.State
	poll.Within(h.t, hosttest.WaitTimeout, 20*time.Millisecond, "the agent to be "+what, func() (bool, string) {
		var err error
		st, err = h.conn.UnitState(context.Background(), hosttest.AgentUnitName)
		return err == nil && ok(st), fmt.Sprintf("%+v, %v", st, err)
	})
	return st
}

// Started while Vault is down, hostd is ready at once (systemd would kill
// it at TimeoutStartSec otherwise), reports the outage as ill health, and
// renders as soon as Vault answers again.
func TestReadyDuringAVaultOutageAndRendersOnceVaultIsBack(t *testing.T) {
	vault := vaulttest.Start(t)
	vault.Mount("kv", "kv", nil)
	vault.Write("kv/agent", hosttest.AgentKeys("A1", "S-one"))
	dir := t.TempDir()
	conf, token := filepath.Join(dir, "agent.conf"), filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(vault.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	vault.Pause()

	started := time.Now()
	h := start(t, func(_, socket string) string {
		return hosttest.Config{
			VaultAddress:   vault.Addr,
			TokenFile:      token,
			TemplateConfig: []string{`max_backoff = "1s"`},
			Templates:      []hosttest.Template{{Contents: hosttest.AgentTemplate, Destination: conf}},
			Socket:         socket,
		}.Text()
	})
	h.notes.waitCount(t, notifyReady, 1)
	ready := time.Since(started)

	snap := hosttest.WaitStatus(t, h.socket, "auth", func(s status.Snapshot) bool { return s.Auth.LastError != "" })
	healthy, reasons := status.Healthy(snap)
	if why := strings.Join(reasons, "\n"); healthy || !strings.Contains(why, "not authenticated") || !strings.Contains(why, "not rendered yet") {
		t.Errorf("during the outage status must say why hostd is not healthy: %v", reasons)
	}
	if _, err := os.Stat(conf); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file rendered without Vault: %v", err)
	}

	vault.Resume()
	back := time.Now()
	hosttest.WaitFile(t, conf, agenthost.KeysOne)
	firstRender := time.Since(back)
	h.notes.waitCount(t, statusLine("running; every template rendered"), 1)
	hosttest.WaitStatus(t, h.socket, "healthy", func(s status.Snapshot) bool { ok, _ := status.Healthy(s); return ok })
	t.Logf("READY=1 %s after the start with Vault down; first render %s after Vault answered again", ready.Round(time.Millisecond), firstRender.Round(time.Millisecond))
}

// A reload while the agent's restart is slow returns without waiting for
// it, and the watchdog keeps being fed meanwhile; the restart then ends on
// the new rollout's watch.
func TestAReloadDuringASlowRestartReturnsAndTheWatchdogIsFed(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a := newAgentHost(t, fmt.Sprintf("ExecStartPre=/bin/sh -c 'while [ ! -e %s ]; do sleep 0.02; done'\n", gate))
	notes := newRecorder()
	notes.watchdog = 400 * time.Millisecond
	h := startWith(t, notes, func(_, socket string) string { return a.Config(socket, `active_timeout = "3s"`) })
	first := waitUnit(t, h.socket, func(u status.Unit) bool { return u.Restarts >= 1 })
	if first.LastResult != event.ResultDone {
		t.Fatalf("first restart: %+v", first)
	}

	// The next restart waits in ExecStartPre until the gate opens.
	if err := os.Remove(gate); err != nil {
		t.Fatal(err)
	}
	a.Vault.Write("kv/agent", hosttest.AgentKeys("A2", "S-two"))
	hosttest.WaitFile(t, a.Conf, agenthost.KeysTwo)
	a.waitAgent("restarting", func(st restart.State) bool { return st.SubState == "start-pre" })

	pings := notes.count(notifyWatchdog)
	h.write(a.Config(h.socket, `active_timeout = "4s"`)) // a new restart policy: a new rollout
	h.triggerReload()
	if st := a.waitAgent("still restarting", func(restart.State) bool { return true }); st.SubState != "start-pre" {
		t.Fatalf("the restart ended before the reload did (%+v): nothing was shown", st)
	}
	notes.waitCount(t, notifyWatchdog, pings+3)
	if u := fetch(t, h.socket).Units[0]; u.Restarts != first.Restarts {
		t.Fatalf("the restart under way was reported before its gate opened: %+v", u)
	}

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	u := waitUnit(t, h.socket, func(u status.Unit) bool { return u.Restarts > first.Restarts })
	if u.LastResult != event.ResultDone || u.ActiveState != "active" {
		t.Errorf("the restart handed over at the reload: %+v", u)
	}
}

// A stop while the agent fails on new keys does not wait out the health
// check and does not roll back without a verdict; the next start finishes
// the check and rolls back.
func TestAStopDuringAFailingRestartIsFinishedAtTheNextStart(t *testing.T) {
	a := newAgentHost(t, "Restart=always\nRestartSec=100ms\n")
	state := t.TempDir()
	first := startWith(t, newRecorder(), func(_, socket string) string { return a.Config(socket, `active_timeout = "1h"`) },
		WithStateDirectory(state), WithStopGrace(200*time.Millisecond))
	waitUnit(t, first.socket, func(u status.Unit) bool { return u.Restarts >= 1 && u.LastResult == event.ResultDone })
	hosttest.WaitFile(t, a.Conf, agenthost.KeysOne)

	a.Vault.Write("kv/agent", hosttest.AgentKeys("A3", "broken"))
	hosttest.WaitFile(t, a.Conf, agenthost.KeysBroken)
	a.waitAgent("crash-looping on the broken keys", func(st restart.State) bool { return st.NRestarts > 0 })
	stopping := time.Now()
	if err := first.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	stopped := time.Since(stopping)
	if got, _ := os.ReadFile(a.Conf); string(got) != agenthost.KeysBroken {
		t.Fatalf("agent.conf after the stop = %q: rolled back without a verdict", got)
	}

	restarted := time.Now()
	second := startWith(t, newRecorder(), func(_, socket string) string { return a.Config(socket, `active_timeout = "3s"`) },
		WithStateDirectory(state))
	hosttest.WaitFile(t, a.Conf, agenthost.KeysOne)
	u := waitUnit(t, second.socket, func(u status.Unit) bool { return u.RolledBack && u.LastResult != "" })
	if u.LastResult != event.ResultRolledBack {
		t.Fatalf("at the next start: %+v", u)
	}
	a.waitAgent("running on the previous keys", func(st restart.State) bool { return st.Active() && st.SubState == "running" })
	t.Logf("stop during a failing restart took %s; the next start rolled back within %s", stopped.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
}

package host

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// owedDebounce holds a rendered change back from its restart long enough
// for a story to kill or upgrade hostd in between: a restart owed.
const owedDebounce = 10 * time.Second

// TestPackagedHostdStartsDuringAVaultOutage boots the host while Vault
// cannot be reached (its front end, where hostd.hcl points, refuses
// connections), with the site's keys rotated while the host was down:
// `systemctl start hostd` returns once hostd runs (READY=1 without Vault),
// the unit stays up through failed logins, and once Vault is reachable
// again hostd renders the new keys and restarts the agent onto them.
func TestPackagedHostdStartsDuringAVaultOutage(t *testing.T) {
	h := setUpPackagedHost(t, packagedOptions{frontEnd: true})
	old := primary(t, h.sim)
	rotated := h.rotate(t, "the site's keys rotate while the host is down")
	h.front.Down()
	down := time.Now()

	story := t
	var before unitProps
	harness.StepT(t, "systemctl start hostd returns while Vault cannot be reached", func(t *testing.T) {
		took := h.startHostdService(t, story)
		t.Logf("systemctl start hostd returned after %s with Vault unreachable", took.Round(time.Millisecond))
		before = h.propsOf(t, hostdUnit)
		if before.ActiveState != "active" || before.SubState != "running" {
			t.Fatalf("hostd.service is %s/%s after systemctl start, want active/running", before.ActiveState, before.SubState)
		}
	})

	harness.StepT(t, "hostd stays up through its failed logins", func(t *testing.T) {
		waitFor(t, "hostd status to show two failed logins", func() (bool, string) {
			snap, _ := h.status(t)
			return !snap.Auth.Authenticated && strings.Contains(snap.Auth.LastError, "connection refused") && h.metric(t, "hostd_auth_attempts_total", "method", "approle", "result", "failure") >= 2,
				fmt.Sprintf("auth %+v", snap.Auth)
		})
		if _, code := h.status(t); code != 1 {
			t.Errorf("hostd status exited %d without Vault, want 1 (unhealthy)", code)
		}
		if got := h.propsOf(t, hostdUnit); got != before {
			t.Errorf("hostd.service changed during the outage:\nbefore %+v\nnow    %+v", before, got)
		}
		if s := readState(t, h.stateFile); s.AccessKey != old.AccessKey {
			t.Errorf("the agent runs on %s during the outage, want the pair it had (%s)", s.AccessKey, old.AccessKey)
		}
	})

	harness.StepT(t, "once Vault is reachable, the agent runs on the new keys", func(t *testing.T) {
		back := time.Now()
		h.front.Up(t)
		t.Logf("Vault was unreachable for %s", back.Sub(down).Round(time.Millisecond))
		waitFor(t, "the agent to run on the rotated pair", agentRunsOn(h.stateFile, rotated.AccessKey))
		t.Logf("recovery: the agent runs on the new keys %s after Vault was reachable again", time.Since(back).Round(time.Millisecond))
		h.waitHealthy(t)
		if got := h.propsOf(t, hostdUnit); got != before {
			t.Errorf("systemd restarted hostd.service:\nbefore %+v\nnow    %+v", before, got)
		}
		h.checkNoSecrets(t)
	})
}

// TestPackagedHostdKilledWithARestartOwed kills hostd with SIGKILL after it
// rendered a rotation and before the agent's restart was due: systemd
// starts hostd again (Restart=on-failure), and the new hostd finds the
// agent running on content older than its file and restarts it onto the
// new keys.
func TestPackagedHostdKilledWithARestartOwed(t *testing.T) {
	h := setUpPackagedHost(t, packagedOptions{debounce: owedDebounce})
	h.startHostdService(t, t)
	h.waitHealthy(t)
	owed := h.rotateWithRestartOwed(t)

	var killed time.Time
	harness.StepT(t, "hostd is killed before the restart is due", func(t *testing.T) {
		killed = time.Now()
		h.systemctl(t, "kill", "--signal=KILL", hostdUnit)
		if s := readState(t, h.stateFile); s != owed.agentBefore {
			t.Fatalf("the agent was restarted before hostd was killed (now %+v, was %+v): the debounce of %s did not hold the restart back", s, owed.agentBefore, owedDebounce)
		}
	})

	harness.StepT(t, "systemd starts hostd again, and it restarts the agent onto the new keys", func(t *testing.T) {
		waitFor(t, "systemd to start hostd again", func() (bool, string) {
			p := h.propsOf(t, hostdUnit)
			return p.MainPID != owed.hostdBefore.MainPID && p.NRestarts != owed.hostdBefore.NRestarts && p.SubState == "running", fmt.Sprintf("%+v", p)
		})
		t.Logf("systemd started hostd again %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
		h.checkRunsAsHostd(t)
		waitFor(t, "the agent to run on the rotated pair", agentRunsOn(h.stateFile, owed.rotated.AccessKey))
		t.Logf("recovery: the agent runs on the new keys %s after hostd was killed", time.Since(killed).Round(time.Millisecond))
		h.waitRestartedByThisHostd(t)
		h.checkNoSecrets(t)
	})
}

// TestPackagedHostdLeavesAStoppedAgentStopped stops the agent as an
// operator does, then rotates: hostd renders the new keys but does not
// start the agent, and says so; the operator's own start brings the agent
// up on the new keys.
func TestPackagedHostdLeavesAStoppedAgentStopped(t *testing.T) {
	h := setUpPackagedHost(t, packagedOptions{})
	h.startHostdService(t, t)
	h.waitHealthy(t)
	old := readState(t, h.stateFile)

	harness.StepT(t, "the operator stops the agent", func(t *testing.T) {
		h.systemctl(t, "stop", agentUnit)
	})
	rotatedAt := time.Now()
	rotated := h.rotate(t, "the site's keys rotate")

	harness.StepT(t, "hostd renders the new keys and leaves the agent stopped", func(t *testing.T) {
		waitFor(t, "hostd to find the agent not running", func() (bool, string) {
			u := h.unit(t, h.snapshot(t))
			return u.LastResult == event.ResultNotRunning && u.LastRestart.After(rotatedAt), fmt.Sprintf("unit %+v", u)
		})
		if conf := readFile(h.agentConf); !strings.Contains(conf, rotated.AccessKey) {
			t.Errorf("agent.conf does not hold the new access key %s", rotated.AccessKey)
		}
		if state := h.systemctl(t, "show", "-p", "ActiveState", "--value", agentUnit); state != "inactive" {
			t.Errorf("the agent's unit is %s, want inactive: hostd started an agent the operator stopped", state)
		}
		if s := readState(t, h.stateFile); s != old {
			t.Errorf("an agent ran after the operator stopped it: now %+v, was %+v", s, old)
		}
		if table := h.statusTable(t); !strings.Contains(table, event.ResultNotRunning) {
			t.Errorf("hostd status does not say the agent was not running:\n%s", table)
		}
	})

	harness.StepT(t, "the operator starts the agent: it runs on the new keys", func(t *testing.T) {
		start := time.Now()
		h.systemctl(t, "start", agentUnit)
		waitFor(t, "the agent to run on the rotated pair", agentRunsOn(h.stateFile, rotated.AccessKey))
		t.Logf("the agent runs on the new keys %s after the operator started it", time.Since(start).Round(time.Millisecond))
		h.checkNoSecrets(t)
	})
}

// TestPackageUpgradeWithARestartOwed upgrades the hostd package after hostd
// rendered a rotation and before the agent's restart was due: the new
// package's postinst try-restarts hostd, and the new release's hostd
// restarts the agent onto the new keys.
func TestPackageUpgradeWithARestartOwed(t *testing.T) {
	h := setUpPackagedHost(t, packagedOptions{debounce: owedDebounce})
	_, next := hostdPackages(t)
	h.startHostdService(t, t)
	if snap := h.waitHealthy(t); snap.Version != firstRelease {
		t.Fatalf("hostd status reports version %q, want %q", snap.Version, firstRelease)
	}
	owed := h.rotateWithRestartOwed(t)

	var upgrading time.Time
	harness.StepT(t, "the operator upgrades the package; its postinst restarts hostd", func(t *testing.T) {
		upgrading = time.Now()
		out := h.dpkgInstall(t, next)
		t.Logf("dpkg --install of %s returned after %s", nextRelease, time.Since(upgrading).Round(time.Millisecond))
		if strings.Contains(out, "installed but not enabled") {
			t.Errorf("the upgrade printed the first install's steps:\n%s", out)
		}
		if v := h.installedVersion(t); v != nextRelease+"-1" {
			t.Fatalf("installed hostd %s after the upgrade, want %s-1", v, nextRelease)
		}
		if p := h.propsOf(t, hostdUnit); p.MainPID == owed.hostdBefore.MainPID || p.SubState != "running" {
			t.Fatalf("hostd.service after the upgrade: %+v (before %+v): the postinst did not restart it", p, owed.hostdBefore)
		}
		h.checkRunsAsHostd(t)
		if s := readState(t, h.stateFile); s == owed.agentBefore {
			t.Logf("when dpkg returned the agent still ran on the old keys: the restart is owed by the new hostd")
		}
	})

	harness.StepT(t, "the new hostd restarts the agent onto the new keys", func(t *testing.T) {
		waitFor(t, "the agent to run on the rotated pair", agentRunsOn(h.stateFile, owed.rotated.AccessKey))
		t.Logf("recovery: the agent runs on the new keys %s after dpkg --install began", time.Since(upgrading).Round(time.Millisecond))
		if snap := h.waitRestartedByThisHostd(t); snap.Version != nextRelease {
			t.Errorf("hostd status reports version %q after the upgrade, want %q", snap.Version, nextRelease)
		}
		h.checkNoSecrets(t)
	})
}

// rotate rotates the site's keys in Vault and returns the new primary pair.
func (h *host) rotate(t *testing.T, what string) sigsci.KeySet {
	t.Helper()
	var rotated sigsci.KeySet
	harness.StepT(t, what, func(t *testing.T) {
		old := primary(t, h.sim)
		h.sh(t, "vault write -f /sigsci/rotate/sites/"+siteName).OK(t)
		rotated = primary(t, h.sim)
		if rotated.AccessKey == old.AccessKey {
			t.Fatalf("the rotation left the primary access key %s in place", old.AccessKey)
		}
	})
	return rotated
}

// restartOwed is where a story about a restart owed starts from.
type restartOwed struct {
	agentBefore agentState    // what the agent ran on before the rotation
	rotated     sigsci.KeySet // the new primary pair, rendered
	hostdBefore unitProps     // hostd.service once it owes the restart
}

// rotateWithRestartOwed rotates the site's keys and returns once hostd has
// rendered them and holds the agent's restart for later.
func (h *host) rotateWithRestartOwed(t *testing.T) restartOwed {
	t.Helper()
	agentBefore := readState(t, h.stateFile)
	rotated := h.rotate(t, "the site's keys rotate")
	harness.StepT(t, "hostd renders the new keys and owes the agent a restart", func(t *testing.T) {
		waitFor(t, "hostd to render the new keys with the agent's restart pending", func() (bool, string) {
			u := h.unit(t, h.snapshot(t))
			return strings.Contains(readFile(h.agentConf), rotated.AccessKey) && !u.PendingDue.IsZero(), fmt.Sprintf("unit %+v", u)
		})
	})
	return restartOwed{agentBefore: agentBefore, rotated: rotated, hostdBefore: h.propsOf(t, hostdUnit)}
}

// waitRestartedByThisHostd waits until the running hostd reports a
// restart of the agent of its own that ended well, with nothing pending.
func (h *host) waitRestartedByThisHostd(t *testing.T) status.Snapshot {
	t.Helper()
	var snap status.Snapshot
	waitFor(t, "this hostd to report its restart of the agent", func() (bool, string) {
		snap, _ = h.status(t)
		u := h.unit(t, snap)
		return u.Restarts >= 1 && u.LastResult == event.ResultDone && u.PendingDue.IsZero(), fmt.Sprintf("unit %+v", u)
	})
	return snap
}

// waitHealthy polls `hostd status` until it calls the host healthy; a
// hostd still starting (no status socket yet) is waited for.
func (h *host) waitHealthy(t *testing.T) status.Snapshot {
	t.Helper()
	var snap status.Snapshot
	waitFor(t, "hostd status to call the host healthy", func() (bool, string) {
		cmd := exec.CommandContext(t.Context(), programs.Command("hostd"), "status", "-json", "-socket", h.socket)
		out, err := cmd.Output()
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			return false, err.Error()
		}
		if jsonErr := json.Unmarshal(out, &snap); jsonErr != nil {
			return false, fmt.Sprintf("%v: %s", err, out)
		}
		return err == nil, fmt.Sprintf("exit %v: %s", err, out)
	})
	return snap
}

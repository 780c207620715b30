package host

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// TestRetirementWaitsForARestartHeldForTheMaintenanceWindow: hostd renders
// a rotation at once, but the agent's restart waits for a maintenance
// window hours away. The agent still runs the old key, so hostd goes on
// reporting it, and the documented retirement is refused, naming the host,
// until the window opens and the agent runs the new key.
func TestRetirementWaitsForARestartHeldForTheMaintenanceWindow(t *testing.T) {
	h := setUpHost(t, hostOptions{})
	old := primary(t, h.sim)

	harness.StepT(t, "hostd reports the key the agent runs", func(t *testing.T) {
		h.waitOnPrimary(t, old.AccessKey)
	})

	harness.StepT(t, "the operator holds restarts for a maintenance window hours away", func(t *testing.T) {
		now := time.Now().UTC()
		window := fmt.Sprintf("maintenance_window {\n    start    = %q\n    end      = %q\n    timezone = \"UTC\"\n  }",
			now.Add(3*time.Hour).Format("15:04"), now.Add(4*time.Hour).Format("15:04"))
		h.writeConfig(t, window)
		h.reload(t)
	})

	var rotated sigsci.KeySet
	var rotatedAt time.Time
	harness.StepT(t, "a rotation is rendered at once; the restart waits for the window", func(t *testing.T) {
		rotatedAt = time.Now()
		h.sh(t, "vault write -f /sigsci/rotate/sites/"+siteName).OK(t)
		rotated = primary(t, h.sim)
		waitFor(t, "agent.conf to hold the new key", func() (bool, string) {
			return strings.Contains(readFile(h.agentConf), rotated.AccessKey), "not yet"
		})
		waitFor(t, "the restart to wait for the window", func() (bool, string) {
			u := h.unit(t, h.snapshot(t))
			return !u.PendingDue.IsZero(), fmt.Sprintf("unit %+v", u)
		})
		if s, err := readAgentState(h.stateFile); err != nil || s.AccessKey != old.AccessKey {
			t.Fatalf("the agent runs %+v (%v), want the old key until the window", s, err)
		}
	})

	harness.StepT(t, "hostd keeps reporting the old key, and the retirement is refused", func(t *testing.T) {
		waitFor(t, "a report after the rotation", func() (bool, string) {
			reports := h.snapshot(t).Reports
			return len(reports) == 1 && reports[0].LastAttempt.After(rotatedAt) && reports[0].LastError == "", fmt.Sprintf("reports %+v", reports)
		})
		if r := h.snapshot(t).Reports[0]; r.AccessKey != old.AccessKey || r.Host != hostName {
			t.Fatalf("hostd reported %+v with the restart owed, want the old key %s", r, old.AccessKey)
		}
		view := h.fleet(t)
		if view.OnOldKeys[hostName] != old.AccessKey || view.RetireAllowed {
			t.Fatalf("the fleet view: %+v", view)
		}
		stderr := h.sh(t, "vault delete /sigsci/rotate/sites/"+siteName).Refused(t)
		for _, want := range []string{"Code: 409", hostName + " (" + old.AccessKey + ")", "force=true"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("the refusal lacks %q:\n%s", want, stderr)
			}
		}
		if r := h.sim.CheckAgentKeys(old.AccessKey, old.SecretKey); !r.Live {
			t.Fatal("the old pair was retired although the agent runs it")
		}
	})

	harness.StepT(t, "the window opens: the agent restarts, hostd reports the new key, the retirement goes through", func(t *testing.T) {
		h.writeConfig(t, "")
		h.reload(t)
		waitFor(t, "the agent to run on the new pair", agentRunsOn(h.stateFile, rotated.AccessKey))
		h.waitOnPrimary(t, rotated.AccessKey)
		h.sh(t, "vault delete /sigsci/rotate/sites/"+siteName).OK(t)
		if r := h.sim.CheckAgentKeys(old.AccessKey, old.SecretKey); r.Live {
			t.Fatal("the old pair is still live after the retirement")
		}
		cmd := exec.CommandContext(t.Context(), "systemctl", "--user", "is-active", agentUnit)
		cmd.Env = append(os.Environ(), h.manager.Env()...)
		if out, err := cmd.CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "active" {
			t.Fatalf("systemctl --user is-active %s: %v: %s", agentUnit, err, out)
		}
		h.checkNoSecrets(t)
	})
}

// fleetView is what `vault read sigsci/fleet/vault-user/sites/<site>`
// answers.
type fleetView struct {
	PrimaryAccessKey string            `json:"primary_access_key"`
	Hosts            []string          `json:"hosts"`
	OnPrimary        []string          `json:"on_primary"`
	OnOldKeys        map[string]string `json:"on_old_keys"`
	Stale            []string          `json:"stale"`
	RetireAllowed    bool              `json:"retire_allowed"`
	RetireBlockedBy  string            `json:"retire_blocked_by"`
}

// fleetCommand is how the operator reads the site's fleet view.
const fleetCommand = "vault read -format=json /sigsci/fleet/vault-user/sites/" + siteName

// fleet reads the site's fleet view as the operator does.
func (h *host) fleet(t *testing.T) fleetView {
	t.Helper()
	return parseFleetView(t, h.sh(t, fleetCommand).OK(t))
}

// pollFleet reads the site's fleet view as the operator does until cond
// holds, failing the test after timeout. It logs the command once, not
// every read.
func (h *host) pollFleet(t *testing.T, timeout time.Duration, what string, cond func(fleetView) (bool, string)) {
	t.Helper()
	t.Logf("$ %s  (every %s until %s)", fleetCommand, pollInterval, what)
	waitWithin(t, timeout, what, func() (bool, string) {
		return cond(parseFleetView(t, h.vault.ShellQuietly(t, h.work, fleetCommand).OK(t)))
	})
}

func parseFleetView(t *testing.T, out string) fleetView {
	t.Helper()
	var resp struct{ Data fleetView }
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("the fleet view is not JSON: %v\n%s", err, out)
	}
	return resp.Data
}

// waitOnPrimary waits until the fleet view shows this host on the primary
// key accessKey, and retirement allowed.
func (h *host) waitOnPrimary(t *testing.T, accessKey string) {
	t.Helper()
	h.pollFleet(t, waitTimeout, "the fleet view to show "+h.name+" on "+accessKey, func(v fleetView) (bool, string) {
		return v.PrimaryAccessKey == accessKey && slices.Contains(v.OnPrimary, h.name) && v.RetireAllowed, fmt.Sprintf("%+v", v)
	})
}

// writeConfig rewrites hostd.hcl with extraRestart in its restart block;
// h.reload applies it.
func (h *host) writeConfig(t *testing.T, extraRestart string) {
	t.Helper()
	if err := os.WriteFile(h.configPath, []byte(hostdConfig(h, extraRestart)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// parseJSON returns the data of a `vault read -format=json` answer.
func parseJSON(t *testing.T, out string) map[string]any {
	t.Helper()
	var resp struct{ Data map[string]any }
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return resp.Data
}

package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

const (
	wwwCreds  = "sigsci/creds/vault-user/sites/www"
	wwwReport = "sigsci/fleet/vault-user/sites/www/hosts/web-1"
)

// TestTheAgentsKeyIsReportedAfterEachRestartAndAcrossARestartOfHostd runs
// the whole daemon against a real Vault and a real systemd user manager. A
// kv mount at "sigsci" stands in for the engine at the same paths: the
// renderer reads sigsci/creds/vault-user/sites/www as hostd reads the
// engine's, and the report is written with hostd's own token to
// sigsci/fleet/vault-user/sites/www/hosts/web-1 (e2e/host tests the same
// with the engine itself).
func TestTheAgentsKeyIsReportedAfterEachRestartAndAcrossARestartOfHostd(t *testing.T) {
	vault := vaulttest.Start(t)
	manager := systemdtest.Start(t)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", manager.BusAddress())

	vault.Mount("sigsci", "kv", map[string]string{"version": "1"})
	vault.Write(wwwCreds, hosttest.AgentKeys("A1", "S-one"))
	// kv takes "create" for a new entry; the engine's report path "update".
	vault.WritePolicy("host", `path "`+wwwCreds+`" { capabilities = ["read"] }
path "sigsci/fleet/vault-user/sites/www/hosts/*" { capabilities = ["create", "update"] }`)
	secret, err := vault.Client().Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"host"}})
	if err != nil {
		t.Fatal(err)
	}
	dir, stateDir := t.TempDir(), t.TempDir()
	conf, tokenFile := filepath.Join(dir, "agent.conf"), filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(secret.Auth.ClientToken), 0o600); err != nil {
		t.Fatal(err)
	}
	unit := hosttest.AgentUnit(conf, "")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hosttest.StartAgentOnOldKeys(ctx, t, manager, conf, unit)

	now := time.Now().UTC()
	closedWindow := maintenanceWindow(now.Add(3*time.Hour).Format("15:04"), now.Add(4*time.Hour).Format("15:04"))
	metricsAddr := freeAddress(t)
	text := func(socket, window string) string {
		tmpl := hosttest.AgentConfTemplate(conf)
		tmpl.Contents = strings.ReplaceAll(tmpl.Contents, "kv/agent", wwwCreds)
		return hosttest.Config{
			VaultAddress:    vault.Addr,
			TokenFile:       tokenFile,
			Templates:       []hosttest.Template{tmpl},
			Restart:         hosttest.RestartAtOnce(append(slices.Clone(hosttest.HealthChecked), window)...),
			Report:          []string{`host = "web-1"`, `interval = "5s"`},
			Socket:          socket,
			TelemetryListen: metricsAddr,
		}.Text()
	}
	h := startWith(t, newRecorder(), func(_, socket string) string { return text(socket, "") }, WithStateDirectory(stateDir))

	// hostd restarts the agent onto A1 and reports it once it passed its
	// health check.
	stored := waitReport(t, vault, "A1")
	if stored["unit"] != "agent.service" || stored["version"] != "9.9.9" {
		t.Errorf("report = %v", stored)
	}
	if started, err := time.Parse(time.RFC3339, fmt.Sprint(stored["agent_started"])); err != nil || started.Before(now.Add(-time.Minute)) {
		t.Errorf("agent_started = %v (%v): want the restarted process's start", stored["agent_started"], err)
	}
	snap := hosttest.WaitStatus(t, h.socket, "the report in status", func(s status.Snapshot) bool {
		return len(s.Reports) == 1 && s.Reports[0].AccessKey == "A1" && s.Reports[0].LastError == ""
	})
	if r := snap.Reports[0]; r.Host != "web-1" || r.Site != "www" || r.Role != "vault-user" || r.Mount != "sigsci" {
		t.Errorf("status report = %+v", r)
	}

	// A rotation: the report follows the restart; the metric moves to the
	// new key.
	vault.Write(wwwCreds, hosttest.AgentKeys("A2", "S-two"))
	waitReport(t, vault, "A2")
	waitMetric(t, metricsAddr, `hostd_agent_key_info{access_key="A2",site="www",unit="agent.service"}`, true)
	waitMetric(t, metricsAddr, `hostd_agent_key_info{access_key="A1",site="www",unit="agent.service"}`, false)

	// The next restart must wait for a window hours away: the agent still
	// runs A2, and the heartbeats say so.
	h.write(text(h.socket, closedWindow))
	h.triggerReload()
	vault.Write(wwwCreds, hosttest.AgentKeys("A3", "S-three"))
	hosttest.WaitFile(t, conf, "accesskeyid=A3\nsecretaccesskey=S-three\n")
	waitUnit(t, h.socket, func(u status.Unit) bool { return !u.PendingDue.IsZero() })
	heartbeats := successes(t, metricsAddr)
	pollUntil(t, "a heartbeat after the file changed", func() bool { return successes(t, metricsAddr) > heartbeats })
	if got := readReport(t, vault)["access_key"]; got != "A2" {
		t.Fatalf("with the restart owed the report says %v, want A2: the agent still runs it", got)
	}

	// hostd restarts before the window: the new one knows from its state
	// that the agent runs A2, and reports that (not A3, and not nothing).
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := vault.Client().Logical().Delete(wwwReport); err != nil {
		t.Fatal(err)
	}
	h = startWith(t, newRecorder(), func(_, socket string) string { return text(socket, closedWindow) }, WithStateDirectory(stateDir))
	if got := waitReport(t, vault, "A2"); got["unit"] != "agent.service" {
		t.Errorf("report after the restart of hostd = %v", got)
	}

	// The window opens (the operator drops it): the restart runs, and the
	// report moves to A3.
	h.write(text(h.socket, ""))
	h.triggerReload()
	waitReport(t, vault, "A3")
	if logs := h.logs.String(); strings.Contains(logs, "S-three") || strings.Contains(logs, secret.Auth.ClientToken) {
		t.Fatal("a secret reached hostd's log")
	}
}

// readReport reads web-1's report with the root token; nil when none.
func readReport(t *testing.T, vault *vaulttest.Server) map[string]any {
	t.Helper()
	s, err := vault.Client().Logical().Read(wwwReport)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return nil
	}
	return s.Data
}

// waitReport waits until web-1's report names key.
func waitReport(t *testing.T, vault *vaulttest.Server, key string) map[string]any {
	t.Helper()
	var last map[string]any
	pollUntil(t, "the report of "+key, func() bool {
		last = readReport(t, vault)
		return last["access_key"] == key
	})
	return last
}

func successes(t *testing.T, addr string) float64 {
	t.Helper()
	v, _ := metricValue(t, addr, `hostd_fleet_reports_total{result="success"}`)
	return v
}

func waitMetric(t *testing.T, addr, series string, present bool) {
	t.Helper()
	pollUntil(t, fmt.Sprintf("%s present=%v", series, present), func() bool {
		_, ok := metricValue(t, addr, series)
		return ok == present
	})
}

// pollUntil polls ok for 30 s at most.
func pollUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	poll.Within(t, hosttest.WaitTimeout, 100*time.Millisecond, what, func() (bool, string) { return ok(), "not yet" })
}

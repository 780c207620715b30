package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest/agenthost"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

// TestKeysRotateIntoTheAgent runs the whole pipeline against a real Vault
// and a real systemd user manager: hostd logs in with approle, renders the
// agent's configuration, restarts the agent after each change, and rolls a
// change back that the agent does not survive.
func TestKeysRotateIntoTheAgent(t *testing.T) {
	// The agent stays up only with a secret key it accepts (one starting
	// with "S-"), like the real agent refusing bad keys.
	agent := newAgentHost(t, "")
	vault, dir, conf := agent.Vault, agent.Dir, agent.Conf
	vault.WritePolicy("agent", `path "kv/agent" { capabilities = ["read"] }`)
	role := vault.EnableAppRole("approle", "waf", map[string]any{"token_policies": "agent", "token_ttl": "1h"})
	for name, content := range map[string]string{"role-id": role.RoleID, "secret-id": vault.NewSecretID(role)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	h := start(t, func(_, socket string) string {
		return hosttest.Config{
			VaultAddress: vault.Addr,
			AppRole:      &hosttest.AppRole{RoleIDFile: filepath.Join(dir, "role-id"), SecretIDFile: filepath.Join(dir, "secret-id")},
			Templates:    []hosttest.Template{hosttest.AgentConfTemplate(conf)},
			Restart:      hosttest.RestartAtOnce(hosttest.HealthChecked...),
			Socket:       socket,
		}.Text()
	})

	h.notes.waitCount(t, notifyReady, 1)
	hosttest.WaitFile(t, conf, agenthost.KeysOne)
	if info, err := os.Stat(conf); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("agent.conf: %v, %v; want mode 0600", info, err)
	}
	u := waitUnit(t, h.socket, func(u status.Unit) bool { return u.Restarts >= 1 })
	if u.LastResult != event.ResultDone || u.ActiveState != "active" {
		t.Errorf("after the first render: %+v", u)
	}
	restarts := u.Restarts

	// Rotation: the new keys reach the file and the agent is restarted once.
	vault.Write("kv/agent", hosttest.AgentKeys("A2", "S-two"))
	hosttest.WaitFile(t, conf, agenthost.KeysTwo)
	u = waitUnit(t, h.socket, func(u status.Unit) bool { return u.Restarts > restarts })
	if u.LastResult != event.ResultDone || u.RolledBack {
		t.Errorf("after the rotation: %+v", u)
	}
	restarts = u.Restarts

	// Keys the agent refuses: the previous file comes back and the agent
	// runs on it.
	vault.Write("kv/agent", hosttest.AgentKeys("A3", "broken"))
	u = waitUnit(t, h.socket, func(u status.Unit) bool { return u.Restarts > restarts && u.RolledBack })
	hosttest.WaitFile(t, conf, agenthost.KeysTwo)
	snap := fetch(t, h.socket)
	if healthy, reasons := status.Healthy(snap); healthy || !strings.Contains(strings.Join(reasons, "\n"), "rolled back") {
		t.Errorf("a rollback must make status unhealthy: %v", reasons)
	}
	if u.ActiveState != "active" {
		t.Errorf("the agent must run on the restored file: %+v", u)
	}
	// The next refreshes render the same broken keys: hostd refuses to
	// write them again and says so, and the agent is left alone.
	waitTemplate(t, h.socket, func(tpl status.Template) bool { return strings.Contains(tpl.LastError, "rolled back") })
	if got, err := os.ReadFile(conf); err != nil || string(got) != agenthost.KeysTwo {
		t.Errorf("agent.conf = %q, %v after a refused render", got, err)
	}
	if now := fetch(t, h.socket).Units[0]; now.Restarts != u.Restarts {
		t.Errorf("the agent was restarted again for the refused content: %+v", now)
	}
	// hostd refresh: the operator asks for the refused keys to be tried
	// again now (say, after fixing the agent). They are, and rolled back
	// again, since this agent still refuses them.
	restarts = fetch(t, h.socket).Units[0].Restarts
	if err := status.AskRefresh(ctx, h.socket); err != nil {
		t.Fatal(err)
	}
	u = waitUnit(t, h.socket, func(u status.Unit) bool { return u.Restarts >= restarts+2 && u.RolledBack })
	if u.LastResult != event.ResultRolledBack || u.ActiveState != "active" {
		t.Errorf("after hostd refresh retried the refused keys: %+v", u)
	}
	hosttest.WaitFile(t, conf, agenthost.KeysTwo)

	// The journal tells the same story.
	logs := h.logs.String()
	for _, want := range []string{
		`msg="restart scheduled" component=rollout unit=agent.service`,
		`msg="restarted unit" component=rollout unit=agent.service result=done`,
		`level=WARN msg="restart failed" component=rollout unit=agent.service result=unhealthy`,
		`level=WARN msg="rolled back: the unit runs on the previous files" component=rollout unit=agent.service result=rolled_back`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("hostd's log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "S-two") || strings.Contains(logs, "broken") {
		t.Errorf("a secret key reached hostd's log:\n%s", logs)
	}
}

// waitUnit polls the status socket until the first unit satisfies ok.
func waitUnit(t *testing.T, socket string, ok func(status.Unit) bool) status.Unit {
	t.Helper()
	snap := hosttest.WaitStatus(t, socket, "unit", func(s status.Snapshot) bool { return len(s.Units) > 0 && ok(s.Units[0]) })
	return snap.Units[0]
}

// waitTemplate polls the status socket until the first template satisfies ok.
func waitTemplate(t *testing.T, socket string, ok func(status.Template) bool) status.Template {
	t.Helper()
	snap := hosttest.WaitStatus(t, socket, "template", func(s status.Snapshot) bool { return len(s.Templates) > 0 && ok(s.Templates[0]) })
	return snap.Templates[0]
}

// TestRestartOwedSurvivesAReload: a change waits for the maintenance window;
// a reload that opens the window now must still restart the agent, although
// the new renderer finds the file already up to date.
func TestRestartOwedSurvivesAReload(t *testing.T) {
	agent := newAgentHost(t, "")
	conf := agent.Conf

	now := time.Now().UTC()
	clock := func(d time.Duration) string { return now.Add(d).Format("15:04") }
	text := func(socket, start, end string) string {
		return hosttest.Config{
			VaultAddress: agent.Vault.Addr,
			TokenFile:    agent.Token,
			Templates:    []hosttest.Template{hosttest.AgentConfTemplate(conf)},
			Restart:      hosttest.RestartAtOnce(maintenanceWindow(start, end)),
			Socket:       socket,
		}.Text()
	}
	h := start(t, func(_, socket string) string { return text(socket, clock(3*time.Hour), clock(4*time.Hour)) })

	hosttest.WaitFile(t, conf, agenthost.KeysOne)
	u := waitUnit(t, h.socket, func(u status.Unit) bool { return !u.PendingDue.IsZero() })
	if u.Restarts != 0 || u.PendingDue.Before(now.Add(2*time.Hour)) {
		t.Fatalf("the restart must wait for the window: %+v", u)
	}

	h.write(text(h.socket, clock(-time.Hour), clock(time.Hour)))
	h.triggerReload()
	u = waitUnit(t, h.socket, func(u status.Unit) bool { return u.Restarts >= 1 })
	if u.LastResult != event.ResultDone || u.ActiveState != "active" {
		t.Errorf("after the reload opened the window: %+v", u)
	}
}

// TestReloadChangesTheRefreshOfStaticSecrets: a secret with no lease and no
// rotation hint (a KV secret) is re-read on the refresh interval of the
// configuration in force, also after a reload changed it.
func TestReloadChangesTheRefreshOfStaticSecrets(t *testing.T) {
	vault := vaulttest.Start(t)
	vault.Mount("kv", "kv", nil)
	vault.Write("kv/static", map[string]any{"accessKey": "A1"})
	dir := t.TempDir()
	conf := filepath.Join(dir, "static.conf")
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(vault.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	text := func(socket, refresh string) string {
		return hosttest.Config{
			VaultAddress:   vault.Addr,
			TokenFile:      filepath.Join(dir, "token"),
			TemplateConfig: []string{fmt.Sprintf("refresh_interval = %q", refresh)},
			Templates:      []hosttest.Template{{Contents: `{{ with secret "kv/static" }}{{ .Data.accessKey }}{{ end }}`, Destination: conf}},
			Socket:         socket,
		}.Text()
	}
	h := start(t, func(_, socket string) string { return text(socket, "1h") })
	hosttest.WaitFile(t, conf, "A1")

	h.write(text(h.socket, "5s"))
	reloaded := time.Now()
	h.triggerReload()
	// The new pipeline renders at once; only a change after that render
	// shows the cadence it keeps: the new 5 s, not the old hour.
	waitTemplate(t, h.socket, func(tpl status.Template) bool { return tpl.LastRender.After(reloaded) })
	vault.Write("kv/static", map[string]any{"accessKey": "A2"})
	hosttest.WaitFile(t, conf, "A2")
}

// TestAReloadThatCannotStartKeepsTheLoadedTemplate: a reload whose pipeline
// cannot start (here: a CA file that holds no certificate) restarts the
// previous pipeline as it was loaded, its template text included, not with
// what the edited source file holds now.
func TestAReloadThatCannotStartKeepsTheLoadedTemplate(t *testing.T) {
	vault := vaulttest.Start(t)
	vault.Mount("kv", "kv", nil)
	vault.Write("kv/static", map[string]any{"accessKey": "A1"})
	dir := t.TempDir()
	conf, source, badCA := filepath.Join(dir, "static.conf"), filepath.Join(dir, "static.ctmpl"), filepath.Join(dir, "ca.pem")
	const body = `{{ with secret "kv/static" }}{{ .Data.accessKey }}{{ end }}`
	for path, content := range map[string]string{filepath.Join(dir, "token"): vault.RootToken, source: "v1 " + body, badCA: "not a certificate\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	text := func(socket, vaultExtra string) string {
		return hosttest.Config{
			VaultAddress: vault.Addr,
			VaultLines:   []string{vaultExtra},
			TokenFile:    filepath.Join(dir, "token"),
			Templates:    []hosttest.Template{{Source: source, Destination: conf}},
			Socket:       socket,
		}.Text()
	}
	h := start(t, func(_, socket string) string { return text(socket, "") })
	hosttest.WaitFile(t, conf, "v1 A1")

	if err := os.WriteFile(source, []byte("v2 "+body), 0o600); err != nil {
		t.Fatal(err)
	}
	h.write(text(h.socket, fmt.Sprintf("ca_cert = %q", badCA)))
	reloaded := time.Now()
	h.triggerReload()
	if !strings.Contains(h.logs.String(), "new configuration failed to start; restarting the previous pipeline") {
		t.Fatalf("the new pipeline must fail to start:\n%s", h.logs.String())
	}
	waitTemplate(t, h.socket, func(tpl status.Template) bool { return tpl.LastRender.After(reloaded) })
	if got, err := os.ReadFile(conf); err != nil || string(got) != "v1 A1" {
		t.Errorf("%s = %q, %v after the previous pipeline restarted; want what it rendered before, %q", conf, got, err, "v1 A1")
	}
}

// maintenanceWindow is a restart block's maintenance_window from start to
// end (HH:MM, UTC).
func maintenanceWindow(start, end string) string {
	return fmt.Sprintf("maintenance_window {\n  start = %q\n  end = %q\n  timezone = \"UTC\"\n}", start, end)
}

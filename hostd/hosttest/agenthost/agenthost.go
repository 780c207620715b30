// Package agenthost owns the host that hostd's agent tests run on: a real
// Vault holding the agent's keys at kv/agent, a real systemd user manager
// running the stand-in agent (hosttest.AgentUnit) on keys it accepts, the
// token file hostd logs in with, and hostd's configuration for that agent.
//
// hosttest writes the files and units; this package starts the Vault and the
// manager they go on, the same way for every test that restarts the agent.
// It is for tests; hostd itself never imports it.
package agenthost

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

// What the agent's configuration holds once hostd has rendered
// hosttest.AgentKeys("A1", "S-one") (what Start writes), ("A2", "S-two")
// and ("A3", "broken"), keys the agent refuses.
const (
	KeysOne    = "accesskeyid=A1\nsecretaccesskey=S-one\n"
	KeysTwo    = "accesskeyid=A2\nsecretaccesskey=S-two\n"
	KeysBroken = "accesskeyid=A3\nsecretaccesskey=broken\n"
)

// Host is a Vault with the agent's keys and a systemd user manager running
// the agent. Everything it started stops when the test ends.
type Host struct {
	Vault   *vaulttest.Server
	Manager *systemdtest.Manager
	Dir     string // a temporary directory holding Conf and Token
	Conf    string // the agent's configuration, which hostd renders
	Token   string // a file holding Vault's root token
}

// Start starts Vault with hosttest.AgentKeys("A1", "S-one") at kv/agent and
// a user manager running the agent, with extra [Service] lines (each ending
// in a newline), on a hand-written configuration it accepts
// (hosttest.StartAgentOnOldKeys).
func Start(t testing.TB, service string) *Host {
	t.Helper()
	h := &Host{Vault: vaulttest.Start(t), Manager: systemdtest.Start(t), Dir: t.TempDir()}
	h.Vault.Mount("kv", "kv", nil)
	h.Vault.Write("kv/agent", hosttest.AgentKeys("A1", "S-one"))
	h.Conf = filepath.Join(h.Dir, "agent.conf")
	h.Token = filepath.Join(h.Dir, "token")
	if err := os.WriteFile(h.Token, []byte(h.Vault.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hosttest.StartAgentOnOldKeys(ctx, t, h.Manager, h.Conf, hosttest.AgentUnit(h.Conf, service))
	return h
}

// Config is hostd's configuration for the agent: it logs in with Token,
// renders Conf (retrying Vault within a second), restarts the agent as soon
// as Conf changes with the restart lines given, and serves status on socket.
func (h *Host) Config(socket string, restart ...string) string {
	return hosttest.Config{
		VaultAddress:   h.Vault.Addr,
		TokenFile:      h.Token,
		TemplateConfig: []string{`max_backoff = "1s"`},
		Templates:      []hosttest.Template{hosttest.AgentConfTemplate(h.Conf)},
		Restart:        hosttest.RestartAtOnce(restart...),
		Socket:         socket,
	}.Text()
}

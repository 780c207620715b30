package hosttest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
)

// AgentUnitName is the stand-in agent's systemd unit.
const AgentUnitName = "agent.service"

// AgentTemplate renders the agent's configuration from the secret kv/agent
// (AgentKeys).
const AgentTemplate = `{{ with secret "kv/agent" }}accesskeyid={{ .Data.accessKey }}
secretaccesskey={{ .Data.secretKey }}
{{ end }}`

// OldAgentKeys is what the agent's configuration holds before hostd first
// renders it: keys the agent accepts.
const OldAgentKeys = "accesskeyid=A0\nsecretaccesskey=S-zero\n"

// AgentKeys is the secret AgentTemplate renders, as the plugin stores it:
// plain data (no lease) with a rotation hint that makes consul-template
// read it again within seconds.
func AgentKeys(access, secret string) map[string]any {
	return map[string]any{"accessKey": access, "secretKey": secret, "rotation_period": 60, "ttl": 1}
}

// AgentUnit is the agent's unit file: like the real agent refusing bad
// keys, it stays up only with a secret key it accepts (one starting with
// "S-") in conf. service holds more [Service] lines, each ending in a
// newline.
func AgentUnit(conf, service string) string {
	return fmt.Sprintf("[Unit]\nStartLimitIntervalSec=0\n[Service]\n%sExecStart=/bin/sh -c 'grep -q \"^secretaccesskey=S-\" %s && exec sleep infinity'\n", service, conf)
}

// StartAgentOnOldKeys writes OldAgentKeys to conf, installs unit as
// AgentUnitName and starts it: hostd restarts a running agent, never a
// stopped one.
func StartAgentOnOldKeys(ctx context.Context, t testing.TB, manager *systemdtest.Manager, conf, unit string) {
	t.Helper()
	if err := os.WriteFile(conf, []byte(OldAgentKeys), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := manager.InstallUnit(ctx, AgentUnitName, unit); err != nil {
		t.Fatal(err)
	}
	if err := manager.StartUnit(ctx, AgentUnitName); err != nil {
		t.Fatal(err)
	}
}

// AgentConfTemplate is the template block that renders the agent's
// configuration to conf for AgentUnitName.
func AgentConfTemplate(conf string) Template {
	return Template{Contents: AgentTemplate, Destination: conf, Unit: AgentUnitName}
}

// RestartAtOnce is a restart block for the agent under a test's user
// manager, restarting as soon as a change lands, with extra lines.
func RestartAtOnce(extra ...string) []string {
	return append([]string{`bus = "user"`, `debounce = "0s"`, `splay = "0s"`}, extra...)
}

// HealthChecked is the restart lines of a quick health check: the agent
// must be active within 3 s and stay so for 1 s.
var HealthChecked = []string{`active_timeout = "3s"`, `stable_for = "1s"`}

// Package hosttest holds what the tests of a whole host share: the text of
// a hostd.hcl built from the blocks a test needs (Config), the WAF agent
// stand-in hostd renders for and restarts (agent.go), and the reads of and
// waits for what hostd does to a host: a file's content, a status answer
// (wait.go).
//
// It owns no Vault and no systemd manager: hostd/vaulttest and
// hostd/systemdtest start those; it only writes the files and units a test
// puts on them, and starts the agent unit it wrote (StartAgentOnOldKeys).
// hostd/hosttest/agenthost starts a whole agent host from the three.
package hosttest

import (
	"fmt"
	"strings"
)

// Config is a hostd.hcl, block by block. A zero field leaves its block or
// attribute out, except telemetry's listen address, which is always
// written ("" turns the metrics listener off).
type Config struct {
	VaultAddress string
	VaultLines   []string // more attributes of the vault block
	// Auth is auto_auth's method: TokenFile or AppRole.
	TokenFile string
	AppRole   *AppRole
	// TemplateConfig holds the lines of the template_config block.
	TemplateConfig []string
	Templates      []Template
	// Restart holds the lines of the restart block; nil leaves it out.
	Restart []string
	// Report holds the lines of the report block; nil leaves it out.
	Report          []string
	Socket          string
	SocketMode      string
	TelemetryListen string
	LogLevel        string
	Extra           string // appended as it is
}

// AppRole is an approle login from files.
type AppRole struct {
	RoleIDFile, SecretIDFile string
	RemoveSecretIDFile       bool
}

// Template is one template block.
type Template struct {
	Contents, Source, Destination string
	Perms, Unit                   string
	ErrorOnMissingKey             bool
}

// Text is the configuration as hostd reads it.
func (c Config) Text() string {
	var b strings.Builder
	block(&b, "vault", append([]string{fmt.Sprintf("address = %q", c.VaultAddress)}, c.VaultLines...))
	b.WriteString(c.auth())
	if len(c.TemplateConfig) > 0 {
		block(&b, "template_config", c.TemplateConfig)
	}
	for _, t := range c.Templates {
		block(&b, "template", t.lines())
	}
	if c.Restart != nil {
		block(&b, "restart", c.Restart)
	}
	if c.Report != nil {
		block(&b, "report", c.Report)
	}
	if c.Socket != "" {
		status := []string{fmt.Sprintf("socket_path = %q", c.Socket)}
		if c.SocketMode != "" {
			status = append(status, fmt.Sprintf("socket_mode = %q", c.SocketMode))
		}
		block(&b, "status", status)
	}
	block(&b, "telemetry", []string{fmt.Sprintf("listen_address = %q", c.TelemetryListen)})
	if c.LogLevel != "" {
		block(&b, "log", []string{fmt.Sprintf("level = %q", c.LogLevel)})
	}
	b.WriteString(c.Extra)
	return b.String()
}

func (c Config) auth() string {
	switch {
	case c.AppRole != nil:
		lines := []string{fmt.Sprintf("role_id_file = %q", c.AppRole.RoleIDFile), fmt.Sprintf("secret_id_file = %q", c.AppRole.SecretIDFile)}
		if c.AppRole.RemoveSecretIDFile {
			lines = append(lines, "remove_secret_id_file_after_reading = true")
		}
		return "auto_auth {\n  method \"approle\" {\n    " + strings.Join(lines, "\n    ") + "\n  }\n}\n"
	case c.TokenFile != "":
		return fmt.Sprintf("auto_auth {\n  method \"token_file\" { path = %q }\n}\n", c.TokenFile)
	}
	return ""
}

func (t Template) lines() []string {
	var lines []string
	for _, a := range []struct{ name, value string }{
		{"contents", t.Contents}, {"source", t.Source}, {"destination", t.Destination}, {"perms", t.Perms}, {"unit", t.Unit},
	} {
		if a.value != "" {
			lines = append(lines, fmt.Sprintf("%s = %q", a.name, a.value))
		}
	}
	if t.ErrorOnMissingKey {
		lines = append(lines, "error_on_missing_key = true")
	}
	return lines
}

func block(b *strings.Builder, name string, lines []string) {
	fmt.Fprintf(b, "%s {\n", name)
	for _, l := range lines {
		fmt.Fprintf(b, "  %s\n", strings.ReplaceAll(l, "\n", "\n  "))
	}
	b.WriteString("}\n")
}

package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
)

// base is the smallest valid file; extra blocks in the cases below start at
// line baseLines+1.
const base = `vault {
  address = "https://vault.example:8200"
}
auto_auth {
  method "approle" {
    role_id_file   = "/etc/hostd/role-id"
    secret_id_file = "/etc/hostd/secret-id"
  }
}
`

const baseLines = 9

func TestParseContractExample(t *testing.T) {
	dir := t.TempDir()
	src := writeTemplateSource(t, dir)
	text := `vault {
  address         = "https://vault.example:8200"
  ca_cert         = "/etc/hostd/vault-ca.pem"
  ca_path         = "/etc/hostd/ca.d"
  client_cert     = "/etc/hostd/client.pem"
  client_key      = "/etc/hostd/client-key.pem"
  tls_server_name = "vault.internal"
  namespace       = "waf"
}
auto_auth {
  method "approle" {
    mount_path     = "/auth/waf-approle/"
    role_id_file   = "/etc/hostd/role-id"
    secret_id_file = "/etc/hostd/secret-id"
    remove_secret_id_file_after_reading = true
  }
}
template_config {
  refresh_interval = "45s"
  max_backoff      = "2m"
}
template {
  source      = "` + src + `"
  destination = "/etc/sigsci/agent.conf"
  perms       = "0640"
  user        = "sigsci"
  group       = "sigsci"
  error_on_missing_key = false
  backup      = true
  unit        = "sigsci-agent.service"
}
template {
  contents    = "x"
  destination = "/etc/sigsci/other.conf"
}
restart {
  bus            = "user"
  debounce       = "3s"
  splay          = "0s"
  job_timeout    = "60s"
  active_timeout = "20s"
  maintenance_window {
    start = "02:00"
    end = "04:30"
    timezone = "UTC"
  }
}
telemetry {
  listen_address = "[::1]:9100"
}
status {
  socket_path = "/run/hostd/test.sock"
  socket_mode = "0660"
}
log {
  level  = "debug"
  format = "json"
}
`
	cfg := mustParse(t, "hostd.hcl", text)

	if cfg.Path != "hostd.hcl" {
		t.Errorf("Path = %q", cfg.Path)
	}
	wantVault := Vault{
		Address: "https://vault.example:8200", CACert: "/etc/hostd/vault-ca.pem", CAPath: "/etc/hostd/ca.d",
		ClientCert: "/etc/hostd/client.pem", ClientKey: "/etc/hostd/client-key.pem",
		TLSServerName: "vault.internal", Namespace: "waf",
	}
	if cfg.Vault != wantVault {
		t.Errorf("Vault = %+v, want %+v", cfg.Vault, wantVault)
	}
	wantAuth := AutoAuth{
		Method: auth.MethodAppRole, MountPath: "auth/waf-approle",
		RoleIDFile: "/etc/hostd/role-id", SecretIDFile: "/etc/hostd/secret-id",
		RemoveSecretIDFileAfterReading: true,
	}
	if cfg.AutoAuth != wantAuth {
		t.Errorf("AutoAuth = %+v, want %+v", cfg.AutoAuth, wantAuth)
	}
	if want := (TemplateConfig{RefreshInterval: 45 * time.Second, MaxBackoff: 2 * time.Minute}); cfg.TemplateConfig != want {
		t.Errorf("TemplateConfig = %+v, want %+v", cfg.TemplateConfig, want)
	}
	wantTemplates := []Template{
		{Source: src, Contents: templateSource, Destination: "/etc/sigsci/agent.conf", Perms: 0o640, User: "sigsci", Group: "sigsci",
			ErrorOnMissingKey: false, Backup: true, Unit: "sigsci-agent.service"},
		{Contents: "x", Destination: "/etc/sigsci/other.conf", Perms: 0o600, ErrorOnMissingKey: true, Backup: true},
	}
	if len(cfg.Templates) != len(wantTemplates) {
		t.Fatalf("got %d templates, want %d", len(cfg.Templates), len(wantTemplates))
	}
	for i := range wantTemplates {
		if cfg.Templates[i] != wantTemplates[i] {
			t.Errorf("Templates[%d] = %+v, want %+v", i, cfg.Templates[i], wantTemplates[i])
		}
	}
	r := cfg.Restart
	if r.Bus != restart.UserBus || r.Debounce != 3*time.Second || r.Splay != 0 || r.JobTimeout != time.Minute || r.ActiveTimeout != 20*time.Second {
		t.Errorf("Restart = %+v", r)
	}
	if r.Window == nil || r.Window.Start != 2*time.Hour || r.Window.End != 4*time.Hour+30*time.Minute || r.Window.Location.String() != "UTC" {
		t.Errorf("Window = %+v", r.Window)
	}
	assertServicesAndNoWarning(t, cfg, Telemetry{ListenAddress: "[::1]:9100"},
		Status{SocketPath: "/run/hostd/test.sock", SocketMode: 0o660}, Log{Level: "debug", Format: "json"})
}

func TestParseDefaultsAreSafeForAWAFHost(t *testing.T) {
	cfg := mustParse(t, "hostd.hcl", base+`template {
  contents    = "accesskeyid=x"
  destination = "/etc/sigsci/agent.conf"
  unit        = "sigsci-agent.service"
}
`)
	if cfg.AutoAuth.MountPath != "auth/approle" || cfg.AutoAuth.RemoveSecretIDFileAfterReading {
		t.Errorf("AutoAuth = %+v", cfg.AutoAuth)
	}
	if cfg.TemplateConfig != (TemplateConfig{RefreshInterval: 30 * time.Second, MaxBackoff: 5 * time.Minute}) {
		t.Errorf("TemplateConfig = %+v", cfg.TemplateConfig)
	}
	tpl := cfg.Templates[0]
	if tpl.Perms != 0o600 || !tpl.ErrorOnMissingKey || !tpl.Backup {
		t.Errorf("template defaults = %+v: want perms 0600, error_on_missing_key and backup on", tpl)
	}
	want := Restart{Bus: "system", Debounce: 2 * time.Second, Splay: 30 * time.Second, ActiveTimeout: 30 * time.Second,
		StableFor: 5 * time.Second, RetryRejectedAfter: time.Hour} // JobTimeout zero: from the unit
	if cfg.Restart != want {
		t.Errorf("Restart = %+v, want %+v", cfg.Restart, want)
	}
	// Telemetry defaults to loopback; the defaults must not warn.
	assertServicesAndNoWarning(t, cfg, Telemetry{ListenAddress: "127.0.0.1:9464"},
		Status{SocketPath: "/run/hostd/hostd.sock", SocketMode: 0o600}, Log{Level: "info", Format: "text"})
}

// assertServicesAndNoWarning checks what hostd serves and logs with (the
// telemetry, status and log blocks), and that the file drew no warning.
func assertServicesAndNoWarning(t *testing.T, cfg *Config, telemetry Telemetry, status Status, log Log) {
	t.Helper()
	if cfg.Telemetry != telemetry {
		t.Errorf("Telemetry = %+v, want %+v", cfg.Telemetry, telemetry)
	}
	if cfg.Status != status {
		t.Errorf("Status = %+v, want %+v", cfg.Status, status)
	}
	if cfg.Log != log {
		t.Errorf("Log = %+v, want %+v", cfg.Log, log)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("unexpected warnings: %v", cfg.Warnings)
	}
}

func TestParseOtherAuthMethods(t *testing.T) {
	cert := mustParse(t, "hostd.hcl", `vault {
  address     = "https://vault.example:8200"
  client_cert = "/etc/hostd/client.pem"
  client_key  = "/etc/hostd/client-key.pem"
}
auto_auth {
  method "cert" { name = "waf-hosts" }
}
`)
	if cert.AutoAuth != (AutoAuth{Method: auth.MethodCert, MountPath: "auth/cert", CertName: "waf-hosts"}) {
		t.Errorf("cert AutoAuth = %+v", cert.AutoAuth)
	}
	token := mustParse(t, "hostd.hcl", `vault { address = "https://vault.example:8200" }
auto_auth {
  method "token_file" { path = "/etc/hostd/token" }
}
`)
	if token.AutoAuth != (AutoAuth{Method: auth.MethodTokenFile, TokenFile: "/etc/hostd/token"}) {
		t.Errorf("token_file AutoAuth = %+v", token.AutoAuth)
	}
}

func TestParseTelemetryEmptyDisablesMetrics(t *testing.T) {
	cfg := mustParse(t, "hostd.hcl", base+"telemetry { listen_address = \"\" }\n")
	if cfg.Telemetry.ListenAddress != "" {
		t.Errorf("ListenAddress = %q, want empty (disabled)", cfg.Telemetry.ListenAddress)
	}
}

func TestParseJSONSyntax(t *testing.T) {
	cfg := mustParse(t, "hostd.json", `{
  "vault": {"address": "https://vault.example:8200"},
  "auto_auth": {"method": {"token_file": {"path": "/etc/hostd/token"}}},
  "template": [{"contents": "x", "destination": "/etc/a.conf"}]
}`)
	if cfg.AutoAuth.TokenFile != "/etc/hostd/token" || cfg.Templates[0].Destination != "/etc/a.conf" {
		t.Errorf("cfg = %+v", cfg)
	}
	_, err := Parse("hostd.json", []byte(`{
  "vault": {"address": "vault.example"},
  "auto_auth": {"method": {"token_file": {"path": "/etc/hostd/token"}}}
}`))
	assertOneProblem(t, err, "hostd.json", 2, "Invalid vault address")
}

// TestParseProblems covers every mistake the parser knows about: each case
// must give exactly one problem, on the expected line, saying what is wrong.
func TestParseProblems(t *testing.T) {
	dir := t.TempDir()
	src := writeTemplateSource(t, dir)
	unreadable := filepath.Join(dir, "missing.ctmpl")
	tooLong := "/run/" + strings.Repeat("s", 110) + ".sock"
	tpl := func(lines ...string) string {
		return "template {\n  " + strings.Join(lines, "\n  ") + "\n}\n"
	}
	dest := `destination = "/etc/sigsci/agent.conf"`
	after := func(n int) int { return baseLines + n }

	cases := []struct {
		name   string
		text   string
		line   int
		want   []string // substrings of the problem's text
		reject string   // must not appear anywhere in the error
	}{
		// vault
		{"missing vault block", "auto_auth {\n  method \"token_file\" { path = \"/t\" }\n}\n", 1, []string{"Missing vault block"}, ""},
		{"missing address", "vault {\n  ca_cert = \"/etc/ca.pem\"\n}\n" + base[strings.Index(base, "auto_auth"):], 1, []string{"Missing address", "vault block needs address"}, ""},
		{"address without scheme", `vault { address = "vault.example:8200" }` + "\n" + base[strings.Index(base, "auto_auth"):], 1, []string{"Invalid vault address", `"vault.example:8200"`}, ""},
		{"address ftp", `vault { address = "ftp://vault.example" }` + "\n" + base[strings.Index(base, "auto_auth"):], 1, []string{"Invalid vault address", "scheme must be http or https"}, ""},
		{"address without host", `vault { address = "https://" }` + "\n" + base[strings.Index(base, "auto_auth"):], 1, []string{"Invalid vault address", "no host"}, ""},
		{"address with password", `vault { address = "https://ops:hunter2@vault.example" }` + "\n" + base[strings.Index(base, "auto_auth"):], 1, []string{"Invalid vault address", "credentials"}, "hunter2"},
		{"address with query", `vault { address = "https://vault.example/?x=1" }` + "\n" + base[strings.Index(base, "auto_auth"):], 1, []string{"no query"}, ""},
		{"address port out of range", `vault { address = "https://vault.example:70000" }` + "\n" + base[strings.Index(base, "auto_auth"):], 1, []string{"port out of range"}, ""},
		{"relative ca_cert", "vault {\n  address = \"https://v:8200\"\n  ca_cert = \"ca.pem\"\n}\n" + base[strings.Index(base, "auto_auth"):], 3, []string{"Path not absolute", "ca_cert"}, ""},
		{"client_cert without key", "vault {\n  address = \"https://v:8200\"\n  client_cert = \"/c.pem\"\n}\n" + base[strings.Index(base, "auto_auth"):], 3, []string{"Missing client_key"}, ""},
		{"client_key without cert", "vault {\n  address = \"https://v:8200\"\n  client_key = \"/k.pem\"\n}\n" + base[strings.Index(base, "auto_auth"):], 3, []string{"Missing client_cert"}, ""},
		{"unknown vault attribute", "vault {\n  address = \"https://v:8200\"\n  token = \"s.x\"\n}\n" + base[strings.Index(base, "auto_auth"):], 3, []string{"Unsupported argument", `"token"`}, ""},
		{"duplicate vault block", base + "vault { address = \"https://w:8200\" }\n", after(1), []string{"Duplicate vault block"}, ""},

		// auto_auth
		{"missing auto_auth block", "vault { address = \"https://v:8200\" }\n", 1, []string{"Missing auto_auth block"}, ""},
		{"no method", "vault { address = \"https://v:8200\" }\nauto_auth {\n}\n", 2, []string{"Missing auth method"}, ""},
		{"two methods", base[:strings.Index(base, "  }\n}")] + "  }\n  method \"token_file\" { path = \"/t\" }\n}\n", 9, []string{"More than one auth method", "first is at line 5"}, ""},
		{"unknown method", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"kubernetes\" {}\n}\n", 3, []string{"Unknown auth method", `"kubernetes"`}, ""},
		{"approle without role_id_file", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"approle\" {\n    secret_id_file = \"/s\"\n  }\n}\n", 3, []string{"Missing role_id_file"}, ""},
		{"approle without secret_id_file", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"approle\" {\n    role_id_file = \"/r\"\n  }\n}\n", 3, []string{"Missing secret_id_file"}, ""},
		{"approle relative role_id_file", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"approle\" {\n    role_id_file = \"role-id\"\n    secret_id_file = \"/s\"\n  }\n}\n", 4, []string{"Path not absolute", "role_id_file"}, ""},
		{"approle bad mount_path", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"approle\" {\n    mount_path = \"/\"\n    role_id_file = \"/r\"\n    secret_id_file = \"/s\"\n  }\n}\n", 4, []string{"Invalid mount_path"}, ""},
		{"approle with a cert argument", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"approle\" {\n    role_id_file = \"/r\"\n    secret_id_file = \"/s\"\n    name = \"x\"\n  }\n}\n", 6, []string{"Unsupported argument", `"name"`}, ""},
		{"cert without client certificate", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"cert\" {}\n}\n", 3, []string{"Cert login without a certificate"}, ""},
		{"token_file without path", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"token_file\" {}\n}\n", 3, []string{"Missing path"}, ""},
		{"token_file relative path", "vault { address = \"https://v:8200\" }\nauto_auth {\n  method \"token_file\" { path = \"token\" }\n}\n", 3, []string{"Path not absolute"}, ""},

		// template_config
		{"refresh_interval too short", base + "template_config {\n  refresh_interval = \"1s\"\n}\n", after(2), []string{"Duration too short", "at least 5s"}, ""},
		{"refresh_interval too long", base + "template_config {\n  refresh_interval = \"48h\"\n}\n", after(2), []string{"Duration too long", "at most 24h"}, ""},
		{"refresh_interval without unit", base + "template_config {\n  refresh_interval = 30\n}\n", after(2), []string{"Invalid duration", `"30"`}, ""},
		{"refresh_interval in days", base + "template_config {\n  refresh_interval = \"1d\"\n}\n", after(2), []string{"Invalid duration"}, ""},
		{"max_backoff zero", base + "template_config {\n  max_backoff = \"0s\"\n}\n", after(2), []string{"Duration too short", "at least 1s"}, ""},
		{"max_backoff too long", base + "template_config {\n  max_backoff = \"2h\"\n}\n", after(2), []string{"Duration too long", "at most 1h"}, ""},

		// template
		{"source and contents", base + tpl(`source = "`+src+`"`, `contents = "x"`, dest), after(3), []string{"Both source and contents"}, ""},
		{"neither source nor contents", base + tpl(dest), after(1), []string{"Missing template input"}, ""},
		{"relative source", base + tpl(`source = "agent.ctmpl"`, dest), after(2), []string{"Path not absolute", "source"}, ""},
		{"unreadable source", base + tpl(`source = "`+unreadable+`"`, dest), after(2), []string{"Unreadable template source", "no such file"}, ""},
		{"source is a directory", base + tpl(`source = "`+dir+`"`, dest), after(2), []string{"Unreadable template source", "not a regular file"}, ""},
		{"empty contents", base + tpl(`contents = ""`, dest), after(2), []string{"Empty contents"}, ""},
		{"missing destination", base + tpl(`contents = "x"`), after(1), []string{"Missing destination"}, ""},
		{"relative destination", base + tpl(`contents = "x"`, `destination = "agent.conf"`), after(3), []string{"Path not absolute", "destination"}, ""},
		{"destination is a directory", base + tpl(`contents = "x"`, `destination = "/etc/sigsci/"`), after(3), []string{"Invalid destination", "not a directory"}, ""},
		{"duplicate destination", base + tpl(`contents = "x"`, dest) + tpl(`contents = "y"`, `destination = "/etc/sigsci/../sigsci/agent.conf"`), after(7), []string{"Duplicate destination", "template at line 12"}, ""},
		{"world-writable perms", base + tpl(`contents = "x"`, dest, `perms = "0666"`), after(4), []string{"World-writable template"}, ""},
		{"perms not octal", base + tpl(`contents = "x"`, dest, `perms = "0800"`), after(4), []string{"Invalid file mode", `"0800"`}, ""},
		{"perms too large", base + tpl(`contents = "x"`, dest, `perms = "01777"`), after(4), []string{"Invalid file mode"}, ""},
		{"perms word", base + tpl(`contents = "x"`, dest, `perms = "rw-------"`), after(4), []string{"Invalid file mode"}, ""},
		{"empty user", base + tpl(`contents = "x"`, dest, `user = ""`), after(4), []string{"Invalid user"}, ""},
		{"group with space", base + tpl(`contents = "x"`, dest, `group = "sig sci"`), after(4), []string{"Invalid group"}, ""},
		{"unit without type", base + tpl(`contents = "x"`, dest, `unit = "sigsci-agent"`), after(4), []string{"Invalid unit", `"sigsci-agent.service"`}, ""},
		{"unit with bad characters", base + tpl(`contents = "x"`, dest, `unit = "sigsci agent.service"`), after(4), []string{"Invalid unit"}, ""},
		{"backup not a bool", base + tpl(`contents = "x"`, dest, `backup = "yes"`), after(4), []string{"bool is required"}, ""},
		{"vault agent command", base + tpl(`contents = "x"`, dest, `command = "systemctl restart x"`), after(4), []string{"Unsupported argument", `"command"`}, ""},

		// restart
		{"unknown bus", base + "restart {\n  bus = \"session\"\n}\n", after(2), []string{"Invalid bus", `"system", "user"`}, ""},
		{"negative debounce", base + "restart {\n  debounce = \"-1s\"\n}\n", after(2), []string{"Negative duration", "debounce"}, ""},
		{"debounce too long", base + "restart {\n  debounce = \"2h\"\n}\n", after(2), []string{"Duration too long"}, ""},
		{"negative splay", base + "restart {\n  splay = \"-5m\"\n}\n", after(2), []string{"Negative duration", "splay"}, ""},
		{"splay not a duration", base + "restart {\n  splay = \"soon\"\n}\n", after(2), []string{"Invalid duration", "splay"}, ""},
		{"job_timeout zero", base + "restart {\n  job_timeout = \"0s\"\n}\n", after(2), []string{"Duration too short", "job_timeout"}, ""},
		{"active_timeout too long", base + "restart {\n  active_timeout = \"3h\"\n}\n", after(2), []string{"Duration too long", "active_timeout"}, ""},
		{"window without start", base + "restart {\n  maintenance_window {\n    end = \"04:00\"\n  }\n}\n", after(2), []string{"Missing start"}, ""},
		{"window without end", base + "restart {\n  maintenance_window {\n    start = \"02:00\"\n  }\n}\n", after(2), []string{"Missing end"}, ""},
		{"window start not HH:MM", base + "restart {\n  maintenance_window {\n    start = \"2:00\"\n    end = \"04:00\"\n  }\n}\n", after(3), []string{"Invalid time of day", `"2:00"`}, ""},
		{"window end 24:00", base + "restart {\n  maintenance_window {\n    start = \"22:00\"\n    end = \"24:00\"\n  }\n}\n", after(4), []string{"Invalid time of day"}, ""},
		{"empty window", base + "restart {\n  maintenance_window {\n    start = \"02:00\"\n    end = \"02:00\"\n  }\n}\n", after(4), []string{"Empty maintenance window"}, ""},
		{"unknown timezone", base + "restart {\n  maintenance_window {\n    start = \"02:00\"\n    end = \"04:00\"\n    timezone = \"Mars/Olympus\"\n  }\n}\n", after(5), []string{"Unknown timezone", "Mars/Olympus"}, ""},
		{"empty timezone", base + "restart {\n  maintenance_window {\n    start = \"02:00\"\n    end = \"04:00\"\n    timezone = \"\"\n  }\n}\n", after(5), []string{"Unknown timezone"}, ""},

		// telemetry, status, log
		{"listen_address without host", base + "telemetry {\n  listen_address = \"9464\"\n}\n", after(2), []string{"Invalid listen_address", "not host:port"}, ""},
		{"listen_address bad port", base + "telemetry {\n  listen_address = \"127.0.0.1:99999\"\n}\n", after(2), []string{"Invalid listen_address", "port"}, ""},
		{"relative socket_path", base + "status {\n  socket_path = \"hostd.sock\"\n}\n", after(2), []string{"Path not absolute", "socket_path"}, ""},
		{"socket_path too long", base + "status {\n  socket_path = \"" + tooLong + "\"\n}\n", after(2), []string{"Socket path too long", "at most 107"}, ""},
		{"socket_mode invalid", base + "status {\n  socket_mode = \"0999\"\n}\n", after(2), []string{"Invalid file mode", "socket_mode"}, ""},
		{"unknown log level", base + "log {\n  level = \"verbose\"\n}\n", after(2), []string{"Invalid level", `"debug", "info", "warn", "error"`}, ""},
		{"unknown log format", base + "log {\n  format = \"yaml\"\n}\n", after(2), []string{"Invalid format", `"text", "json"`}, ""},

		// file structure
		{"unknown block", base + "listener \"tcp\" {}\n", after(1), []string{"Unsupported block type", `"listener"`}, ""},
		{"syntax error", base + "template {\n  destination = \n}\n", after(2), []string{"Invalid expression"}, ""},
		{"variables are not allowed", base + "template {\n  contents = \"x\"\n  destination = var.dest\n}\n", after(3), []string{"Variables not allowed"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("hostd.hcl", []byte(tc.text))
			p := assertOneProblem(t, err, "hostd.hcl", tc.line, tc.want...)
			if tc.reject != "" && strings.Contains(err.Error()+p.String(), tc.reject) {
				t.Errorf("error repeats %q: %v", tc.reject, err)
			}
		})
	}
}

func TestParseReportsEveryProblemInFileOrder(t *testing.T) {
	text := `vault {
  address = "vault.example"
}
auto_auth {
  method "approle" {
    role_id_file = "role-id"
    secret_id_file = "/etc/hostd/secret-id"
  }
}
template {
  contents = "x"
  destination = "/etc/a.conf"
  perms = "0777"
}
restart {
  splay = "-1s"
}
log { format = "xml" }
`
	_, err := Parse("hostd.hcl", []byte(text))
	var cfgErr *Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("want *Error, got %T %v", err, err)
	}
	wantLines := []int{2, 6, 13, 16, 18}
	if len(cfgErr.Problems) != len(wantLines) {
		t.Fatalf("got %d problems, want %d:\n%v", len(cfgErr.Problems), len(wantLines), err)
	}
	for i, line := range wantLines {
		if cfgErr.Problems[i].Line != line {
			t.Errorf("problem %d on line %d, want %d: %s", i, cfgErr.Problems[i].Line, line, cfgErr.Problems[i])
		}
	}
	if !strings.HasPrefix(err.Error(), "invalid configuration: 5 problems:\n  hostd.hcl:2:3: Invalid vault address") {
		t.Errorf("error text:\n%v", err)
	}
}

func TestParseWarnings(t *testing.T) {
	cases := []struct {
		name string
		text string
		line int
		want string
	}{
		{"no templates", base, 1, "No template blocks"},
		{"tls_skip_verify", "vault {\n  address = \"https://v:8200\"\n  tls_skip_verify = true\n}\n" + base[strings.Index(base, "auto_auth"):] + "template {\n  contents = \"x\"\n  destination = \"/a\"\n}\n", 3, "TLS verification is off"},
		{"plain http to a remote vault", "vault {\n  address = \"http://vault.example:8200\"\n}\n" + base[strings.Index(base, "auto_auth"):] + "template {\n  contents = \"x\"\n  destination = \"/a\"\n}\n", 2, "Vault address without TLS"},
		{"world-readable template", base + "template {\n  contents = \"x\"\n  destination = \"/a\"\n  perms = \"0644\"\n}\n", 13, "World-readable template"},
		{"unit without backup", base + "template {\n  contents = \"x\"\n  destination = \"/a\"\n  unit = \"a.service\"\n  backup = false\n}\n", 14, "No backup on disk"},
		{"world-writable socket", base + "template {\n  contents = \"x\"\n  destination = \"/a\"\n}\nstatus {\n  socket_mode = \"0666\"\n}\n", 15, "World-writable status socket"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, "hostd.hcl", tc.text)
			if len(cfg.Warnings) != 1 {
				t.Fatalf("want 1 warning, got %v", cfg.Warnings)
			}
			w := cfg.Warnings[0]
			if w.Line != tc.line || !strings.Contains(w.String(), tc.want) {
				t.Errorf("warning %q, want line %d and %q", w, tc.line, tc.want)
			}
		})
	}
	local := mustParse(t, "hostd.hcl", "vault { address = \"http://127.0.0.1:8200\" }\n"+base[strings.Index(base, "auto_auth"):]+"template {\n  contents = \"x\"\n  destination = \"/a\"\n}\n")
	if len(local.Warnings) != 0 {
		t.Errorf("http to loopback must not warn: %v", local.Warnings)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hostd.hcl")
	if err := os.WriteFile(path, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Path != path || cfg.Vault.Address != "https://vault.example:8200" {
		t.Errorf("cfg = %+v", cfg)
	}

	_, err = Load(filepath.Join(dir, "absent.hcl"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "read configuration") {
		t.Errorf("missing file: %v", err)
	}

	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("vault {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var cfgErr *Error
	if !errors.As(err, &cfgErr) || cfgErr.Problems[0].File != bad {
		t.Errorf("problems must name the file: %v", err)
	}
}

// The template that was checked is the one rendered: its source is read
// once, when the configuration is loaded, and an edit shows at the next load.
func TestATemplateSourceIsReadOnceAtLoad(t *testing.T) {
	dir := t.TempDir()
	src := writeTemplateSource(t, dir)
	text := base + "template {\n  source = \"" + src + "\"\n  destination = \"/etc/sigsci/agent.conf\"\n}\n"
	cfg := mustParse(t, "hostd.hcl", text)
	if got := cfg.Templates[0]; got.Source != src || got.Contents != templateSource {
		t.Fatalf("template = %+v, want source %s holding %q", got, src, templateSource)
	}
	if err := os.WriteFile(src, []byte("edited"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Templates[0].Contents; got != templateSource {
		t.Errorf("after an edit, the loaded configuration holds %q, want %q", got, templateSource)
	}
	if got := mustParse(t, "hostd.hcl", text).Templates[0].Contents; got != "edited" {
		t.Errorf("the next load holds %q, want the edit", got)
	}
}

func TestProblemString(t *testing.T) {
	p := Problem{File: "a.hcl", Line: 3, Column: 7, Summary: "Invalid bus", Detail: "use system or user"}
	if got, want := p.String(), "a.hcl:3:7: Invalid bus; use system or user"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := (Problem{File: "a.hcl", Summary: "x"}).String(), "a.hcl: x"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func mustParse(t *testing.T, name, text string) *Config {
	t.Helper()
	cfg, err := Parse(name, []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return cfg
}

// assertOneProblem checks that err is an *Error with exactly one problem, in
// file on line, whose text contains each of want.
func assertOneProblem(t *testing.T, err error, file string, line int, want ...string) Problem {
	t.Helper()
	var cfgErr *Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("want *config.Error, got %T: %v", err, err)
	}
	if len(cfgErr.Problems) != 1 {
		t.Fatalf("want exactly 1 problem, got %d:\n%v", len(cfgErr.Problems), err)
	}
	p := cfgErr.Problems[0]
	if p.File != file || p.Line != line {
		t.Errorf("problem at %s:%d, want %s:%d: %s", p.File, p.Line, file, line, p)
	}
	for _, w := range want {
		if !strings.Contains(p.String(), w) {
			t.Errorf("problem %q does not contain %q", p, w)
		}
	}
	return p
}

// templateSource is the text writeTemplateSource writes.
const templateSource = `{{ with secret "sigsci/creds/r/sites/s" }}{{ end }}`

func writeTemplateSource(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "agent.ctmpl")
	if err := os.WriteFile(path, []byte(templateSource), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

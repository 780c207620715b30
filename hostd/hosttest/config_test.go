package hosttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
)

// TestConfigTextIsWhatHostdReads: every block Config writes comes back from
// hostd's own parser with the values the test gave.
func TestConfigTextIsWhatHostdReads(t *testing.T) {
	source := filepath.Join(t.TempDir(), "extra.tmpl")
	if err := os.WriteFile(source, []byte("extra"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := Config{
		VaultAddress:   "https://vault.example:8200",
		VaultLines:     []string{`namespace = "waf"`},
		AppRole:        &AppRole{RoleIDFile: "/etc/hostd/role-id", SecretIDFile: "/etc/hostd/secret-id", RemoveSecretIDFile: true},
		TemplateConfig: []string{`max_backoff = "1s"`},
		Templates: []Template{
			AgentConfTemplate("/etc/sigsci/agent.conf"),
			{Source: source, Destination: "/etc/sigsci/extra.conf", Perms: "0640", ErrorOnMissingKey: true},
		},
		Restart:         RestartAtOnce(append(HealthChecked, "maintenance_window {\n  start = \"02:00\"\n  end = \"04:00\"\n  timezone = \"UTC\"\n}")...),
		Report:          []string{`host = "web-1"`},
		Socket:          "/run/hostd/test.sock",
		SocketMode:      "0660",
		TelemetryListen: "",
		LogLevel:        "debug",
	}.Text()
	cfg, err := config.Parse("hostd.hcl", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	// hostd's default is true as well, so only the text can show it.
	if n := strings.Count(text, "error_on_missing_key = true"); n != 1 {
		t.Errorf("error_on_missing_key written %d times, want once:\n%s", n, text)
	}
	a := cfg.AutoAuth
	switch {
	case cfg.Vault.Address != "https://vault.example:8200" || cfg.Vault.Namespace != "waf":
		t.Errorf("vault = %+v", cfg.Vault)
	case a.Method != "approle" || a.RoleIDFile != "/etc/hostd/role-id" || a.SecretIDFile != "/etc/hostd/secret-id" || !a.RemoveSecretIDFileAfterReading:
		t.Errorf("auto_auth = %+v", a)
	case cfg.TemplateConfig.MaxBackoff != time.Second:
		t.Errorf("template_config = %+v", cfg.TemplateConfig)
	case len(cfg.Templates) != 2 || cfg.Templates[0].Unit != AgentUnitName || cfg.Templates[0].Contents != AgentTemplate ||
		cfg.Templates[1].Source != source || cfg.Templates[1].Perms != 0o640:
		t.Errorf("templates = %+v", cfg.Templates)
	case cfg.Restart.Bus != "user" || cfg.Restart.Debounce != 0 || cfg.Restart.Splay != 0 || cfg.Restart.ActiveTimeout != 3*time.Second ||
		cfg.Restart.StableFor != time.Second || cfg.Restart.Window == nil:
		t.Errorf("restart = %+v", cfg.Restart)
	case cfg.Report.Host != "web-1":
		t.Errorf("report = %+v", cfg.Report)
	case cfg.Status.SocketPath != "/run/hostd/test.sock" || cfg.Status.SocketMode != 0o660:
		t.Errorf("status = %+v", cfg.Status)
	case cfg.Telemetry.ListenAddress != "" || cfg.Log.Level != "debug":
		t.Errorf("telemetry = %+v, log = %+v", cfg.Telemetry, cfg.Log)
	}
}

func TestConfigTextWithATokenFileAndNoRestartBlock(t *testing.T) {
	text := Config{VaultAddress: "http://127.0.0.1:8200", TokenFile: "/etc/hostd/token", TelemetryListen: "127.0.0.1:0"}.Text()
	cfg, err := config.Parse("hostd.hcl", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if cfg.AutoAuth.Method != "token_file" || cfg.AutoAuth.TokenFile != "/etc/hostd/token" || cfg.Telemetry.ListenAddress != "127.0.0.1:0" {
		t.Errorf("config = %+v", cfg)
	}
	if cfg.Restart.Bus == "user" {
		t.Errorf("no restart block must leave hostd's default bus: %+v", cfg.Restart)
	}
}

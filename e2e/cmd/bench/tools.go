package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
)

// stopTimeout bounds how long a tool may take to exit after SIGTERM.
const stopTimeout = 15 * time.Second

// tool is one of the programs compared: how to configure and start it.
type tool struct {
	name   string // as the table shows it
	short  string // in progress lines
	binary string // the file an operator installs, for its size
	// config returns the tool's configuration for host h.
	config func(t testing.TB, h host) string
	// args are the command-line arguments that run it with config file path.
	args func(path string) []string
	// reports: the tool reports the key it runs to Vault's fleet view.
	reports bool
}

// host is the files one tool works with. Everything the tool itself writes
// lands under dir (its HOME and TMPDIR are there too), so that what it leaves
// on disk can be inspected; its log is kept outside dir.
type host struct {
	name         string // the host's name in the fleet; "" for hostd's default (the hostname)
	vaultAddr    string
	dir          string
	roleIDFile   string
	secretIDFile string
	template     string // templates/agent.ctmpl
	destination  string
	refresh      time.Duration // the tool's re-read interval
	logPath      string
}

func hostdTool(p *harness.Programs) tool {
	return tool{
		name:    "hostd",
		short:   "hostd",
		binary:  p.Command("hostd"),
		config:  hostdConfig,
		args:    func(path string) []string { return []string{"run", "-config", path} },
		reports: true,
	}
}

func vaultAgentTool(p *harness.Programs) tool {
	return tool{
		name:   "Vault Agent",
		short:  "agent",
		binary: p.Vault,
		config: vaultAgentConfig,
		args:   func(path string) []string { return []string{"agent", "-config=" + path} },
	}
}

// hostdConfig is hostd's documented configuration for one template, with no
// unit to restart; its metrics endpoint stays on, as by default, and it
// reports the key it rendered as h.name every report.interval (default).
func hostdConfig(t testing.TB, h host) string {
	c := hosttest.Config{
		VaultAddress:    h.vaultAddr,
		AppRole:         &hosttest.AppRole{RoleIDFile: h.roleIDFile, SecretIDFile: h.secretIDFile},
		TemplateConfig:  []string{fmt.Sprintf("refresh_interval = %q", h.refresh.String())},
		Templates:       []hosttest.Template{{Source: h.template, Destination: h.destination, Perms: "0600"}},
		TelemetryListen: harness.FreeLoopbackAddr(t),
		Socket:          filepath.Join(h.dir, "hostd.sock"),
	}
	if h.name != "" {
		c.Report = []string{fmt.Sprintf("host = %q", h.name)}
	}
	return c.Text()
}

// vaultAgentConfig is the matching Vault Agent configuration: the same
// AppRole files (kept after reading, as hostd does), the same template and
// destination, the same re-read interval for secrets without a lease, and no
// sink (templates do not need one).
func vaultAgentConfig(t testing.TB, h host) string {
	return fmt.Sprintf(`vault {
  address = %q
}

auto_auth {
  method "approle" {
    config = {
      role_id_file_path                   = %q
      secret_id_file_path                 = %q
      remove_secret_id_file_after_reading = false
    }
  }
}

template_config {
  static_secret_render_interval = %q
}

template {
  source      = %q
  destination = %q
  perms       = "0600"
}
`, h.vaultAddr, h.roleIDFile, h.secretIDFile, h.refresh.String(), h.template, h.destination)
}

// process is a running tool.
type process struct {
	*harness.Process
	name    string
	logPath string
}

// startTool writes the tool's configuration into h.dir and starts it in a
// process group of its own, with a clean environment; it is stopped when t
// ends if stop was not called first.
func startTool(t testing.TB, tl tool, h host) *process {
	t.Helper()
	configPath := filepath.Join(h.dir, "config.hcl")
	if err := os.WriteFile(configPath, []byte(tl.config(t, h)), 0o600); err != nil {
		t.Fatal(err)
	}
	home, tmp := filepath.Join(h.dir, "home"), filepath.Join(h.dir, "tmp")
	for _, d := range []string{home, tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	logFile, err := os.Create(h.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(tl.binary, tl.args(configPath)...)
	cmd.Dir = h.dir
	cmd.Env = append(harness.WithoutVaultEnv(os.Environ()), "HOME="+home, "TMPDIR="+tmp)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	proc, err := harness.StartProcess(cmd)
	if err != nil {
		t.Fatalf("%s: %v", tl.name, err)
	}
	p := &process{Process: proc, name: filepath.Base(tl.binary), logPath: h.logPath}
	t.Cleanup(func() { p.stop(t) })
	return p
}

// alive fails t if the process has exited.
func (p *process) alive(t testing.TB) {
	t.Helper()
	select {
	case <-p.Exited():
		t.Fatalf("%s exited: %v\nlast lines of its log:\n%s", p.name, p.Err(), tail(p.logPath, 30))
	default:
	}
}

// stop ends the process group with SIGTERM, then SIGKILL. It may be called
// more than once.
func (p *process) stop(t testing.TB) {
	if !p.Stop(stopTimeout) {
		t.Logf("%s did not stop within %s of SIGTERM: killed it", p.name, stopTimeout)
	}
	if err := p.WaitError(); err != nil {
		t.Errorf("waiting for %s: %v", p.name, err)
	}
}

// tail returns the last n lines of a file, for failure messages.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

package host

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

const (
	corpID    = "acme-corp"
	emailID   = "ops@acme.test"
	siteName  = "www"
	agentUnit = "sigsci-agent.service"

	waitTimeout  = 90 * time.Second
	pollInterval = 100 * time.Millisecond
)

// hostPolicy lets the host read its site's keys and nothing else.
const hostPolicy = `path "sigsci/creds/vault-user/sites/` + siteName + `" {
  capabilities = ["read"]
}
`

// agentState is what the fake agent records about the keys it runs with.
type agentState struct {
	AccessKey string `json:"accessKey"`
	Primary   bool   `json:"primary"`
	PID       int    `json:"pid"`
}

// TestRotationReachesTheAgent follows one site's keys from a rotation in
// Vault to the agent running on the new pair, then retires the old pair.
func TestRotationReachesTheAgent(t *testing.T) {
	apiToken := "sigsci-api-token-" + randomHex(t)
	sim := harness.StartSimulator(t, sigscisim.Seed{Corps: []sigscisim.CorpSeed{{
		Name:  corpID,
		Users: []sigscisim.UserSeed{{Email: emailID, Token: apiToken}},
		Sites: []sigscisim.SiteSeed{{Name: siteName, DisplayName: "WWW"}},
	}}})
	vault := harness.StartVault(t, &programs)
	manager := systemdtest.Start(t)
	work := t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "token.txt"), []byte(apiToken+"\n"), 0o600); err != nil {
		t.Fatalf("writing token.txt: %v", err)
	}
	sh := func(t *testing.T, script string) harness.Result {
		t.Helper()
		return vault.Shell(t, work, script)
	}

	step(t, "the operator installs the plugin, creates the role and copies the site", func(t *testing.T) {
		vault.Shell(t, programs.Bin, "vault plugin register -sha256=$(sha256sum vault-plugin-sigsci|cut -c-64) secret vault-plugin-sigsci").OK(t)
		vault.Shell(t, programs.Bin, "vault secrets enable -path=sigsci vault-plugin-sigsci").OK(t)
		sh(t, "vault write /sigsci/role/vault-user corp="+corpID+" email="+emailID+" api_url="+sim.APIURL+" token=@token.txt").OK(t)
		sh(t, "vault write -f /sigsci/creds/vault-user/sites/"+siteName).OK(t)
	})

	hostDir := filepath.Join(work, "host")
	step(t, "the host gets an AppRole that reads its site only", func(t *testing.T) {
		if err := os.Mkdir(hostDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, "host.hcl"), []byte(hostPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		sh(t, "vault auth enable approle").OK(t)
		sh(t, "vault policy write sigsci-host-"+siteName+" host.hcl").OK(t)
		sh(t, "vault write auth/approle/role/host-"+siteName+" token_policies=sigsci-host-"+siteName+" token_ttl=1h").OK(t)
		sh(t, "vault read -field=role_id auth/approle/role/host-"+siteName+"/role-id > host/role-id").OK(t)
		sh(t, "vault write -f -field=secret_id auth/approle/role/host-"+siteName+"/secret-id > host/secret-id").OK(t)
	})

	bin := t.TempDir()
	agentConf := filepath.Join(hostDir, "agent.conf")
	stateFile := filepath.Join(hostDir, "agent.state")
	step(t, "the fake agent is installed as a user unit", func(t *testing.T) {
		build := exec.Command("go", "build", "-o", filepath.Join(bin, "fakeagent"), "./fakeagent")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building the fake agent: %v\n%s", err, out)
		}
		unit := fmt.Sprintf("[Unit]\nDescription=fake Signal Sciences agent\n\n[Service]\nExecStart=%s -config %s -check-url %s -state-file %s\n",
			filepath.Join(bin, "fakeagent"), agentConf, sim.URL+"/sim/agent/check", stateFile)
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if err := manager.InstallUnit(ctx, agentUnit, unit); err != nil {
			t.Fatal(err)
		}
	})

	story := t // hostd outlives each step
	socket := filepath.Join(manager.Dir(), "hostd.sock")
	hostdLog := filepath.Join(hostDir, "hostd.log")
	step(t, "hostd starts and the agent runs on the live primary pair", func(t *testing.T) {
		config := hostdConfig(vault.Addr, hostDir, agentConf, socket)
		configPath := filepath.Join(hostDir, "hostd.hcl")
		if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		startHostd(t, story, configPath, hostdLog, manager.Env())
		waitFor(t, "hostd to render agent.conf", func() (bool, string) {
			_, err := os.Stat(agentConf)
			return err == nil, fmt.Sprint(err)
		})
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if err := manager.StartUnit(ctx, agentUnit); err != nil {
			t.Fatalf("starting the agent: %v\nhostd log:\n%s", err, readFile(hostdLog))
		}
		want := primary(t, sim).AccessKey
		waitFor(t, "the agent to run on the primary pair", agentRunsOn(stateFile, want))
	})

	old := primary(t, sim)
	var rotated sigsci.KeySet
	step(t, "a rotation in Vault reaches the agent", func(t *testing.T) {
		start := time.Now()
		sh(t, "vault write -f /sigsci/rotate/sites/"+siteName).OK(t)
		rotated = primary(t, sim)
		if rotated.AccessKey == old.AccessKey {
			t.Fatalf("the rotation left the primary access key %s in place", old.AccessKey)
		}
		waitFor(t, "the agent to run on the new primary pair", agentRunsOn(stateFile, rotated.AccessKey))
		t.Logf("rotate-to-agent: %s", time.Since(start).Round(time.Millisecond))
	})

	step(t, "retiring the old pair kills it at the API and leaves the agent running", func(t *testing.T) {
		sh(t, "vault delete /sigsci/rotate/sites/"+siteName).OK(t)
		if r := sim.CheckAgentKeys(old.AccessKey, old.SecretKey); r.Live {
			t.Fatalf("the retired pair %s is still live at the API", old.AccessKey)
		}
		if r := sim.CheckAgentKeys(rotated.AccessKey, rotated.SecretKey); !r.Live || !r.Primary {
			t.Fatalf("the new pair is not the live primary: %+v", r)
		}
		cmd := exec.CommandContext(t.Context(), "systemctl", "--user", "is-active", agentUnit)
		cmd.Env = append(os.Environ(), manager.Env()...)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "active" {
			t.Fatalf("systemctl --user is-active %s: %v: %s", agentUnit, err, out)
		}
	})

	step(t, "no secret reaches hostd's log or status", func(t *testing.T) {
		cmd := exec.CommandContext(t.Context(), programs.Command("hostd"), "status", "-json", "-socket", socket)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hostd status -json: %v\n%s", err, out)
		}
		if !json.Valid(out) {
			t.Fatalf("hostd status -json printed no JSON:\n%s", out)
		}
		secrets := map[string]string{
			"the API token":          apiToken,
			"the Vault root token":   vault.Token,
			"the old secret key":     old.SecretKey,
			"the rotated secret key": rotated.SecretKey,
		}
		logText := readFile(hostdLog)
		if !strings.Contains(logText, "hostd ready") || !strings.Contains(string(out), agentUnit) {
			t.Fatalf("hostd's log or status says too little to check:\n%s\n%s", logText, out)
		}
		harness.NoSecrets(t, "hostd's log", logText, secrets)
		harness.NoSecrets(t, "hostd status -json", string(out), secrets)
	})
}

func hostdConfig(vaultAddr, hostDir, agentConf, socket string) string {
	contents := fmt.Sprintf(`{{ with secret "sigsci/creds/vault-user/sites/%s" }}
accesskeyid={{ .Data.accessKey }}
secretkey={{ .Data.secretKey }}
{{ end }}
`, siteName)
	return fmt.Sprintf(`vault {
  address = %q
}

auto_auth {
  method "approle" {
    role_id_file   = %q
    secret_id_file = %q
  }
}

template_config {
  refresh_interval = "5s"
}

template {
  contents    = %q
  destination = %q
  unit        = %q
}

restart {
  bus      = "user"
  debounce = "0s"
  splay    = "0s"
}

telemetry {
  listen_address = ""
}

status {
  socket_path = %q
}
`, vaultAddr, filepath.Join(hostDir, "role-id"), filepath.Join(hostDir, "secret-id"),
		contents, agentConf, agentUnit, socket)
}

// startHostd runs hostd as a child process with the user manager's bus in its
// environment and stops it with SIGTERM when story ends.
func startHostd(t, story *testing.T, configPath, logPath string, busEnv []string) {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(programs.Command("hostd"), "run", "-config", configPath)
	cmd.Env = append(withoutVaultEnv(os.Environ()), busEnv...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting hostd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	story.Cleanup(func() {
		t := story
		defer logFile.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			var exitErr *exec.ExitError
			if err != nil && !errors.As(err, &exitErr) {
				t.Errorf("waiting for hostd: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("hostd did not stop within 30s of SIGTERM; killing it")
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("hostd log:\n%s", readFile(logPath))
		}
	})
}

// agentRunsOn reports whether the agent's state file names accessKey.
func agentRunsOn(stateFile, accessKey string) func() (bool, string) {
	return func() (bool, string) {
		data, err := os.ReadFile(stateFile)
		if err != nil {
			return false, err.Error()
		}
		var s agentState
		if err := json.Unmarshal(data, &s); err != nil {
			return false, fmt.Sprintf("state file: %v", err)
		}
		return s.AccessKey == accessKey, "agent runs on " + s.AccessKey
	}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, last := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last: %s)", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func primary(t *testing.T, sim *harness.Simulator) sigsci.KeySet {
	t.Helper()
	for _, ks := range sim.KeySets(corpID, siteName) {
		if ks.Primary {
			return ks
		}
	}
	t.Fatalf("the API has no primary key set for site %q", siteName)
	return sigsci.KeySet{}
}

func withoutVaultEnv(env []string) []string {
	var kept []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "VAULT_") {
			kept = append(kept, kv)
		}
	}
	return kept
}

func readFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return string(data)
}

func step(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, f) {
		t.FailNow()
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

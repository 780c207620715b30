package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

const (
	siteName  = "www" // a site of the operator's corp, harness.CorpID
	agentUnit = "sigsci-agent.service"

	// hostName is the host's name in the fleet (report.host).
	hostName = "web-1"

	waitTimeout  = 90 * time.Second
	pollInterval = 100 * time.Millisecond
)

// hostPolicy is the packaged host policy (packaging/vault/host.hcl) for the
// host's site, as its comment tells the operator to write it: read the
// site's keys and report which key the agent runs, nothing else.
func hostPolicy(t *testing.T) string {
	t.Helper()
	return strings.ReplaceAll(repoFile(t, "packaging/vault/host.hcl"), "<site-name>", siteName)
}

// documentedTemplate is the product documentation's template
// (templates/documented.ctmpl) for the host's site: the agent reads the file
// it renders. templates/agent.ctmpl, which names site www itself, renders a
// second file for the same unit.
func documentedTemplate(t *testing.T) string {
	t.Helper()
	return strings.ReplaceAll(repoFile(t, "templates/documented.ctmpl"), "<site-name>", siteName)
}

func repoFile(t *testing.T, path string) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// agentState is what the fake agent records about the keys it runs with.
type agentState struct {
	AccessKey string    `json:"accessKey"`
	Primary   bool      `json:"primary"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Checked   time.Time `json:"checked"` // when the pair last proved live (-recheck)
	Lost      string    `json:"lost"`    // why the pair stopped being live under the agent
}

// hostOptions choose how setUpHost builds the host; the zero value is the
// host of the rotation scenario.
type hostOptions struct {
	// metrics serves hostd's metrics on a free loopback port.
	metrics bool
}

// host is one WAF host: its Vault side (plugin, role, site, AppRole), a user
// manager running the fake agent as agentUnit, and hostd rendering the
// agent's keys from the configuration at configPath.
type host struct {
	apiToken string
	sim      *harness.Simulator
	vault    *harness.Vault
	front    *frontEnd // where hostd.hcl reaches Vault; nil: Vault itself
	manager  *systemdtest.Manager
	work     string // the operator's working directory

	name         string // the host's name in the fleet (report.host)
	unitName     string // the agent's unit
	dir          string // the host's configuration directory
	templatePath string // agent.ctmpl: the documented template, rendered to agentConf
	agentConf    string
	agentTOML    string // rendered from the repository's templates/agent.ctmpl
	stateFile    string
	configPath   string
	socket       string
	hostdLog     string
	metricsAddr  string // host:port of hostd's metrics; empty when off
	hostd        *background

	stateDir string        // hostd's $STATE_DIRECTORY; empty: hostd keeps its state in memory
	agentBin string        // the fake agent's binary; built by installAgent when empty
	recheck  time.Duration // the fake agent's -recheck; 0: it checks its pair at start only
}

// sh runs an operator's shell command against the host's Vault.
func (h *host) sh(t *testing.T, script string) harness.Result {
	t.Helper()
	return h.vault.Shell(t, h.work, script)
}

// setUpHost builds a host step by step, as an operator would, and returns
// once hostd has rendered agent.conf and the agent runs on the live primary
// pair. Everything it starts stops when t ends.
func setUpHost(t *testing.T, opts hostOptions) *host {
	t.Helper()
	h := newHost(t, systemdtest.Start(t))
	h.placeIn(h.dir, hostName, agentUnit)
	if opts.metrics {
		h.metricsAddr = harness.FreeLoopbackAddr(t)
	}
	h.installAgent(t)
	h.startAgentAndHostd(t, t)
	return h
}

// placeIn puts the host's files in dir and names the host and its agent's
// unit.
func (h *host) placeIn(dir, name, unit string) {
	h.dir, h.name, h.unitName = dir, name, unit
	h.templatePath = filepath.Join(dir, "agent.ctmpl")
	h.agentConf = filepath.Join(dir, "agent.conf")
	h.agentTOML = filepath.Join(dir, "agent.toml")
	h.stateFile = filepath.Join(dir, "agent.state")
	h.configPath = filepath.Join(dir, "hostd.hcl")
	h.socket = filepath.Join(h.manager.Dir(), "hostd-"+name+".sock")
	h.hostdLog = filepath.Join(dir, "hostd.log")
}

// startAgentAndHostd writes the host's templates and hostd.hcl, starts
// hostd (until story ends) and then the agent, and returns once the agent
// runs on the live primary pair and hostd's first restart has settled.
func (h *host) startAgentAndHostd(t, story *testing.T) {
	t.Helper()
	harness.StepT(t, "hostd starts on "+h.name+" and the agent runs on the live primary pair", func(t *testing.T) {
		h.writeTemplate(t, documentedTemplate(t))
		if err := os.WriteFile(filepath.Join(h.dir, "agent-toml.ctmpl"), []byte(repoFile(t, "templates/agent.ctmpl")), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.configPath, []byte(hostdConfig(h, "")), 0o600); err != nil {
			t.Fatal(err)
		}
		h.startHostd(t, story)
		waitFor(t, "hostd to render agent.conf", func() (bool, string) {
			_, err := os.Stat(h.agentConf)
			return err == nil, fmt.Sprint(err)
		})
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if err := h.manager.StartUnit(ctx, h.unitName); err != nil {
			t.Fatalf("starting the agent: %v\nhostd log:\n%s", err, readFile(h.hostdLog))
		}
		want := primary(t, h.sim).AccessKey
		waitFor(t, "the agent to run on the primary pair", agentRunsOn(h.stateFile, want))
		// hostd restarts the unit for its first render too (a restart
		// starts a stopped unit); let that settle before the story goes on.
		waitFor(t, "hostd's first restart of the agent", func() (bool, string) {
			u := h.unit(t, h.snapshot(t))
			return u.Restarts >= 1 && u.PendingDue.IsZero(), fmt.Sprintf("unit %+v", u)
		})
	})
}

// startHostd starts the host's hostd until story ends, logging to
// h.hostdLog.
func (h *host) startHostd(t, story *testing.T) {
	t.Helper()
	env := h.manager.Env()
	if h.stateDir != "" {
		env = append(env, "STATE_DIRECTORY="+h.stateDir)
	}
	h.hostd = startHostd(t, story, h.configPath, h.hostdLog, env)
}

// newHost starts the Vault side of a host, as an operator sets it up: the
// simulator with the site, a Vault with the plugin, the role and the site's
// first keys, and an AppRole that reads the site only, whose role-id and
// secret-id are in h.dir. The agent's unit is for manager to run.
func newHost(t *testing.T, manager *systemdtest.Manager) *host {
	t.Helper()
	h := &host{manager: manager, name: hostName, unitName: agentUnit, work: t.TempDir()}
	h.sim, h.apiToken = harness.StartOperatorAPI(t, h.work, []sigscisim.SiteSeed{{Name: siteName, DisplayName: "WWW"}})
	h.vault = harness.StartVault(t, &programs)
	h.dir = filepath.Join(h.work, "host")

	harness.StepT(t, "the operator installs the plugin, creates the role and copies the site", func(t *testing.T) {
		h.vault.Shell(t, programs.Bin, "vault plugin register -sha256=$(sha256sum vault-plugin-sigsci|cut -c-64) secret vault-plugin-sigsci").OK(t)
		h.vault.Shell(t, programs.Bin, "vault secrets enable -path=sigsci vault-plugin-sigsci").OK(t)
		h.sh(t, "vault write /sigsci/role/vault-user corp="+harness.CorpID+" email="+harness.EmailID+" api_url="+h.sim.APIURL+" token=@token.txt").OK(t)
		h.sh(t, "vault write -f /sigsci/creds/vault-user/sites/"+siteName).OK(t)
	})

	harness.StepT(t, "the host gets an AppRole with the packaged host policy", func(t *testing.T) {
		if err := os.Mkdir(h.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.work, "host.hcl"), []byte(hostPolicy(t)), 0o600); err != nil {
			t.Fatal(err)
		}
		h.sh(t, "vault auth enable approle").OK(t)
		h.sh(t, "vault policy write sigsci-host-"+siteName+" host.hcl").OK(t)
		h.sh(t, "vault write auth/approle/role/host-"+siteName+" token_policies=sigsci-host-"+siteName+" token_ttl=1h").OK(t)
		h.sh(t, "vault read -field=role_id auth/approle/role/host-"+siteName+"/role-id > host/role-id").OK(t)
		h.sh(t, "vault write -f -field=secret_id auth/approle/role/host-"+siteName+"/secret-id > host/secret-id").OK(t)
	})
	return h
}

// installAgent builds the fake agent and installs it as agentUnit, reading
// h.agentConf and recording its keys in h.stateFile.
func (h *host) installAgent(t *testing.T) {
	t.Helper()
	if h.agentBin == "" {
		h.agentBin = buildFakeAgent(t)
	}
	harness.StepT(t, "the fake agent is installed as the user unit "+h.unitName, func(t *testing.T) {
		unit := fmt.Sprintf("[Unit]\nDescription=fake Signal Sciences agent\n\n[Service]\nExecStart=%s -config %s -check-url %s -state-file %s -recheck %s\n",
			h.agentBin, h.agentConf, h.sim.URL+"/sim/agent/check", h.stateFile, h.recheck)
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if err := h.manager.InstallUnit(ctx, h.unitName, unit); err != nil {
			t.Fatal(err)
		}
	})
}

// buildFakeAgent builds the fake agent and returns its binary.
func buildFakeAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fakeagent")
	build := exec.Command("go", "build", "-o", bin, "./fakeagent")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the fake agent: %v\n%s", err, out)
	}
	return bin
}

// writeTemplate writes the agent's template source (agent.ctmpl), the way
// an operator edits it; hostd reads it at start and on SIGHUP.
func (h *host) writeTemplate(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(h.templatePath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRotationReachesTheAgent follows one site's keys from a rotation in
// Vault to the agent running on the new pair, then retires the old pair.
func TestRotationReachesTheAgent(t *testing.T) {
	h := setUpHost(t, hostOptions{})

	old := primary(t, h.sim)
	var rotated sigsci.KeySet
	harness.StepT(t, "a rotation in Vault reaches the agent", func(t *testing.T) {
		restarts := h.unit(t, h.snapshot(t)).Restarts
		start := time.Now()
		h.sh(t, "vault write -f /sigsci/rotate/sites/"+siteName).OK(t)
		rotated = primary(t, h.sim)
		if rotated.AccessKey == old.AccessKey {
			t.Fatalf("the rotation left the primary access key %s in place", old.AccessKey)
		}
		waitFor(t, "the agent to run on the new primary pair", agentRunsOn(h.stateFile, rotated.AccessKey))
		t.Logf("rotate-to-agent: %s", time.Since(start).Round(time.Millisecond))
		if toml := readFile(h.agentTOML); !strings.Contains(toml, `accesskeyid = "`+rotated.AccessKey+`"`) {
			t.Errorf("agent.toml (templates/agent.ctmpl) does not hold the new access key:\n%s", strings.Split(toml, "\n")[0])
		}
		// Both files changed in the same render pass: one restart.
		waitFor(t, "hostd to finish the restart", func() (bool, string) {
			u := h.unit(t, h.snapshot(t))
			return u.Restarts > restarts && u.PendingDue.IsZero(), fmt.Sprintf("unit %+v", u)
		})
		if u := h.unit(t, h.snapshot(t)); u.Restarts != restarts+1 || u.LastResult != "done" {
			t.Errorf("two templates of one unit changed: %d restart(s) (last %s), want exactly 1", u.Restarts-restarts, u.LastResult)
		}
	})

	harness.StepT(t, "hostd reports the new key, and the fleet view shows the host on the primary", func(t *testing.T) {
		h.waitOnPrimary(t, rotated.AccessKey)
		report := parseJSON(t, h.sh(t, "vault read -format=json /sigsci/fleet/vault-user/sites/"+siteName+"/hosts/"+hostName).OK(t))
		if report["access_key"] != rotated.AccessKey || report["unit"] != agentUnit || report["agent_started"] == "" || report["version"] == "" {
			t.Fatalf("the host's report: %v", report)
		}
	})

	harness.StepT(t, "retiring the old pair kills it at the API and leaves the agent running", func(t *testing.T) {
		// The documented command, without force: every host that reports
		// runs the primary.
		h.sh(t, "vault delete /sigsci/rotate/sites/"+siteName).OK(t)
		if r := h.sim.CheckAgentKeys(old.AccessKey, old.SecretKey); r.Live {
			t.Fatalf("the retired pair %s is still live at the API", old.AccessKey)
		}
		if r := h.sim.CheckAgentKeys(rotated.AccessKey, rotated.SecretKey); !r.Live || !r.Primary {
			t.Fatalf("the new pair is not the live primary: %+v", r)
		}
		cmd := exec.CommandContext(t.Context(), "systemctl", "--user", "is-active", agentUnit)
		cmd.Env = append(os.Environ(), h.manager.Env()...)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "active" {
			t.Fatalf("systemctl --user is-active %s: %v: %s", agentUnit, err, out)
		}
	})

	harness.StepT(t, "after another rotation, hostd refresh brings the keys at once", func(t *testing.T) {
		start := time.Now()
		h.sh(t, "vault write -f /sigsci/rotate/sites/"+siteName).OK(t)
		next := primary(t, h.sim)
		out, code := h.runStatusCommand(t, "refresh")
		if code != 0 || !strings.Contains(out, h.agentConf+"\tchanged") {
			t.Fatalf("hostd refresh: exit %d\n%s", code, out)
		}
		waitFor(t, "the agent to run on the pair of the second rotation", agentRunsOn(h.stateFile, next.AccessKey))
		t.Logf("rotate + hostd refresh to agent: %s", time.Since(start).Round(time.Millisecond))
		h.waitOnPrimary(t, next.AccessKey)
		t.Logf("rotate + hostd refresh to the fleet view: %s", time.Since(start).Round(time.Millisecond))
		h.sh(t, "vault delete /sigsci/rotate/sites/"+siteName).OK(t)
	})

	harness.StepT(t, "no secret reaches hostd's log, status or metrics", func(t *testing.T) {
		logText, table := readFile(h.hostdLog), h.statusTable(t)
		if !strings.Contains(logText, "hostd ready") || !strings.Contains(table, agentUnit) {
			t.Fatalf("hostd's log or status says too little to check:\n%s\n%s", logText, table)
		}
		h.checkNoSecrets(t)
	})
}

// hostdConfig is the host's hostd.hcl: agent.ctmpl to agent.conf and the
// repository's agent.ctmpl to agent.toml, both for the agent's unit, and
// the fleet report as hostName. extraRestart goes into the restart block.
func hostdConfig(h *host, extraRestart string) string {
	return hosttest.Config{
		VaultAddress:   h.vault.Addr,
		AppRole:        &hosttest.AppRole{RoleIDFile: filepath.Join(h.dir, "role-id"), SecretIDFile: filepath.Join(h.dir, "secret-id")},
		TemplateConfig: []string{`refresh_interval = "5s"`},
		Templates: []hosttest.Template{
			{Source: h.templatePath, Destination: h.agentConf, Unit: h.unitName, ErrorOnMissingKey: true},
			{Source: filepath.Join(h.dir, "agent-toml.ctmpl"), Destination: h.agentTOML, Unit: h.unitName},
		},
		Restart:         hosttest.RestartAtOnce(extraRestart),
		Report:          []string{fmt.Sprintf("host = %q", h.name), `interval = "5s"`},
		TelemetryListen: h.metricsAddr,
		Socket:          h.socket,
	}.Text()
}

// startHostd runs hostd as a child process with the user manager's bus in its
// environment and stops it with SIGTERM when story ends.
func startHostd(t, story *testing.T, configPath, logPath string, busEnv []string) *background {
	t.Helper()
	cmd := exec.Command(programs.Command("hostd"), "run", "-config", configPath)
	cmd.Env = append(harness.WithoutVaultEnv(os.Environ()), busEnv...)
	return startBackground(t, story, cmd, logPath, 30*time.Second)
}

// background is a program a story runs beside it (hostd, Prometheus).
type background struct {
	*harness.Process
	name       string
	stopWithin time.Duration
}

// startBackground starts cmd with its output in the file logPath and stops
// it when story ends (see stop). Then its log goes to the secrets sweep,
// and is shown if the story failed.
func startBackground(t, story *testing.T, cmd *exec.Cmd, logPath string, stopWithin time.Duration) *background {
	t.Helper()
	b := &background{name: filepath.Base(cmd.Path), stopWithin: stopWithin}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close() // the program has its own copy once started
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if b.Process, err = harness.StartProcess(cmd); err != nil {
		t.Fatal(err)
	}
	story.Cleanup(func() {
		t := story
		b.stop(t)
		if t.Failed() {
			t.Logf("%s log:\n%s", b.name, readFile(logPath))
		}
		harness.KeepFile(t, b.name+"'s log of "+t.Name(), logPath)
	})
	return b
}

// stop ends the program with SIGTERM, as systemctl stop does, failing the
// test (and killing it) if it still runs after its stopWithin.
func (b *background) stop(t *testing.T) {
	t.Helper()
	if !b.Stop(b.stopWithin) {
		t.Errorf("%s did not stop within %s of SIGTERM; killed it", b.name, b.stopWithin)
	}
	if err := b.WaitError(); err != nil {
		t.Errorf("waiting for %s: %v", b.name, err)
	}
}

// agentRunsOn reports whether the agent's state file names accessKey.
func agentRunsOn(stateFile, accessKey string) func() (bool, string) {
	return func() (bool, string) {
		s, err := readAgentState(stateFile)
		if err != nil {
			return false, err.Error()
		}
		return s.AccessKey == accessKey, "agent runs on " + s.AccessKey
	}
}

func readAgentState(stateFile string) (agentState, error) {
	var s agentState
	data, err := os.ReadFile(stateFile)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("state file: %w", err)
	}
	return s, nil
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	waitWithin(t, waitTimeout, what, cond)
}

// waitWithin polls cond until it holds, failing the test after timeout.
func waitWithin(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	poll.Within(t, timeout, pollInterval, what, cond)
}

// primary returns the site's primary key set at the API.
func primary(t *testing.T, sim *harness.Simulator) sigsci.KeySet {
	t.Helper()
	return sim.Primary(t, harness.CorpID, siteName)
}

func readFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return string(data)
}

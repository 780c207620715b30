package host

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
)

// Scenario 3: faults on the host side. Vault stops answering for a while, the
// operator breaks the template, and the operator breaks the agent's config.
// In each the agent keeps serving on a working pair and hostd says what
// went wrong.

// outageRefreshes is how many refreshes must fail while Vault is paused.
const outageRefreshes = 2

// outageTimeout bounds the wait for those refreshes to fail: hostd gives up
// on a request Vault does not answer after 15s (hostd/vaultproxy), long
// before consul-template's own 60s.
const outageTimeout = 90 * time.Second

// TestAgentKeepsRunningWhileVaultIsDown freezes Vault long enough for
// hostd's refreshes to fail twice: the agent keeps its keys and process,
// hostd reports the outage, and recovers by itself once Vault answers again.
func TestAgentKeepsRunningWhileVaultIsDown(t *testing.T) {
	h := setUpHost(t, hostOptions{metrics: true})
	before := h.agentSide(t)

	// A refresh that went through, so the counters below move because of
	// the outage alone.
	waitFor(t, "hostd to read Vault successfully", func() (bool, string) {
		v := h.metric(t, "hostd_vault_requests_total", "code", "200")
		return v >= 1, fmt.Sprintf("%v successful reads", v)
	})
	errorsBefore := h.metric(t, "hostd_vault_request_errors_total")

	paused := time.Now()
	h.vault.Pause(t)
	resumed := false
	defer func() {
		if !resumed {
			h.vault.Resume(t)
		}
	}()

	harness.StepT(t, "hostd reports the outage and leaves the agent alone", func(t *testing.T) {
		var firstError time.Duration
		waitWithin(t, outageTimeout, fmt.Sprintf("%d refreshes to fail against the paused Vault", outageRefreshes), func() (bool, string) {
			n := h.metric(t, "hostd_vault_request_errors_total") - errorsBefore
			if n >= 1 && firstError == 0 {
				firstError = time.Since(paused)
			}
			return n >= outageRefreshes, fmt.Sprintf("%v failed requests", n)
		})
		t.Logf("outage: first failed Vault request after %s, %d after %s",
			firstError.Round(time.Millisecond), outageRefreshes, time.Since(paused).Round(time.Millisecond))

		snap, code := h.status(t)
		if snap.Vault.Errors < outageRefreshes || !strings.Contains(snap.Vault.LastError, "did not answer") || snap.Vault.LastStatusCode != 0 {
			t.Errorf("hostd status does not show the outage: vault %+v", snap.Vault)
		}
		t.Logf("hostd status during the outage: exit %d, vault last error %q", code, snap.Vault.LastError)
		waitFor(t, "hostd status to call the outage unhealthy once it outlasts the grace", func() (bool, string) {
			snap, code := h.status(t)
			return code == 1 && !snap.Vault.FailingSince.IsZero(),
				fmt.Sprintf("exit %d, failing since %s, grace %s", code, snap.Vault.FailingSince.Format(time.RFC3339), time.Duration(snap.Vault.Grace))
		})
		if table := h.statusTable(t); !strings.Contains(table, "every request failed") {
			t.Errorf("hostd status does not say why it is unhealthy:\n%s", table)
		}

		h.checkAgentSideUnchanged(t, before, "during the outage")
	})

	harness.StepT(t, "hostd recovers on its own once Vault is back", func(t *testing.T) {
		resumedAt := time.Now()
		h.vault.Resume(t)
		resumed = true
		t.Logf("Vault paused for %s", resumedAt.Sub(paused).Round(time.Millisecond))

		waitFor(t, "hostd to render again after Vault came back", func() (bool, string) {
			snap, code := h.status(t)
			if code != 0 {
				return false, fmt.Sprintf("hostd status exit %d", code)
			}
			tmpl := h.template(t, snap)
			if tmpl.LastError != "" || !tmpl.LastRender.After(resumedAt) {
				return false, fmt.Sprintf("last render %s, error %q", tmpl.LastRender.Format(time.RFC3339Nano), tmpl.LastError)
			}
			if !snap.Vault.LastRequest.After(resumedAt) || snap.Vault.LastStatusCode != http.StatusOK {
				return false, fmt.Sprintf("last Vault request %s: %d", snap.Vault.LastRequest.Format(time.RFC3339Nano), snap.Vault.LastStatusCode)
			}
			return true, ""
		})
		t.Logf("recovery: healthy with a fresh render %s after Vault resumed", time.Since(resumedAt).Round(time.Millisecond))

		rendered := h.metric(t, "hostd_template_last_render_timestamp_seconds", "template", h.agentConf)
		if rendered < float64(resumedAt.UnixNano())/1e9 {
			t.Errorf("hostd_template_last_render_timestamp_seconds %f is before Vault resumed (%d)", rendered, resumedAt.Unix())
		}
		h.checkAgentSideUnchanged(t, before, "although its keys did not")
		h.checkNoSecrets(t)
	})
}

// TestTemplateThatCannotRenderKeepsTheOldFile reloads hostd with a template
// that names a key the secret does not have: agent.conf keeps its bytes, the
// agent is left alone, and status and metrics show the failed renders.
func TestTemplateThatCannotRenderKeepsTheOldFile(t *testing.T) {
	h := setUpHost(t, hostOptions{metrics: true})
	before := h.agentSide(t)
	errorsBefore := h.metric(t, "hostd_template_renders_total", "result", "error", "template", h.agentConf)

	harness.StepT(t, "the operator misspells a key in the template and reloads hostd", func(t *testing.T) {
		h.writeTemplate(t, strings.Replace(documentedTemplate(t), ".Data.secretKey", ".Data.secret_key", 1))
		h.reload(t)
	})

	harness.StepT(t, "hostd reports the template error and keeps the old file", func(t *testing.T) {
		// Two failed renders: the error is not a one-off, and the file
		// survived a refresh with the broken template.
		waitFor(t, "two failed renders in the metrics", func() (bool, string) {
			n := h.metric(t, "hostd_template_renders_total", "result", "error", "template", h.agentConf) - errorsBefore
			return n >= 2, fmt.Sprintf("%v failed renders", n)
		})
		snap, code := h.status(t)
		tmpl := h.template(t, snap)
		if tmpl.LastError == "" {
			t.Errorf("hostd status does not show the template error: %+v", tmpl)
		}
		if code != 1 {
			t.Errorf("hostd status exited %d with a failing template, want 1 (unhealthy)", code)
		}
		table := h.statusTable(t)
		if !strings.Contains(table, "UNHEALTHY") || !strings.Contains(table, "last render failed") {
			t.Errorf("hostd status does not show the problem:\n%s", table)
		}
		h.checkAgentSideUnchanged(t, before, "after a failed render")
		h.checkNoSecrets(t)
	})
}

// TestAgentThatFailsOnTheNewConfigIsRolledBack reloads hostd with a template
// whose output the agent cannot start with: hostd restarts the agent, sees it
// fail, puts the previous agent.conf back and restarts it on the good pair,
// and does not write the same content again when it comes back.
func TestAgentThatFailsOnTheNewConfigIsRolledBack(t *testing.T) {
	h := setUpHost(t, hostOptions{metrics: true})
	good := hosttest.ReadFile(t, h.agentConf)
	before := readState(t, h.stateFile)
	pair := primary(t, h.sim)

	var reloaded time.Time
	harness.StepT(t, "the operator renders the access key as the secret key and reloads hostd", func(t *testing.T) {
		reloaded = time.Now()
		h.breakTheAgentsConfig(t)
	})

	harness.StepT(t, "hostd restarts the agent, sees it fail and rolls back", func(t *testing.T) {
		waitFor(t, "hostd to report a rollback", func() (bool, string) {
			u := h.unit(t, h.snapshot(t))
			return u.Rollbacks >= 1 && u.RolledBack, fmt.Sprintf("unit %+v", u)
		})
		t.Logf("rollback: reported %s after the reload", time.Since(reloaded).Round(time.Millisecond))

		waitFor(t, "the agent to run again on the good pair", func() (bool, string) {
			s, err := readAgentState(h.stateFile)
			if err != nil {
				return false, err.Error()
			}
			return s.PID != before.PID && s.AccessKey == pair.AccessKey, fmt.Sprintf("agent %+v", s)
		})
		if props := h.unitProps(t); props.ActiveState != "active" || props.SubState != "running" {
			t.Errorf("the agent's unit is not running after the rollback: %+v", props)
		}
		waitFor(t, "agent.conf to hold the good content again", func() (bool, string) {
			got, err := os.ReadFile(h.agentConf)
			return err == nil && string(got) == good, fmt.Sprintf("agent.conf %q, err %v", got, err)
		})

		snap, code := h.status(t)
		u := h.unit(t, snap)
		if !u.RolledBack || !strings.Contains(u.LastError, "restored the previous content") {
			t.Errorf("hostd status -json does not explain the rollback: %+v", u)
		}
		if code != 1 {
			t.Errorf("hostd status exited %d after a rollback, want 1 (unhealthy)", code)
		}
		if n := h.metric(t, "hostd_unit_rollbacks_total", "unit", agentUnit); n < 1 {
			t.Errorf("hostd_unit_rollbacks_total = %v, want at least 1", n)
		}
		if n := h.metric(t, "hostd_unit_restarts_total", "result", "rolled_back", "unit", agentUnit); n != 1 {
			t.Errorf(`hostd_unit_restarts_total{result="rolled_back"} = %v, want 1`, n)
		}
	})

	harness.StepT(t, "the broken content comes back on refresh and is not written again", func(t *testing.T) {
		agent := readState(t, h.stateFile)
		unit := h.unitProps(t)
		waitFor(t, "hostd to refuse the broken content", func() (bool, string) {
			tpl := h.template(t, h.snapshot(t))
			return strings.Contains(tpl.LastError, "rolled back"), fmt.Sprintf("template %+v", tpl)
		})
		if got := hosttest.ReadFile(t, h.agentConf); got != good {
			t.Errorf("agent.conf no longer holds the good content: %q", got)
		}
		if n := h.metric(t, "hostd_unit_restarts_total", "result", "rejected", "unit", agentUnit); n != 0 {
			t.Errorf(`hostd_unit_restarts_total{result="rejected"} = %v: the broken content reached agent.conf again`, n)
		}
		if got := readState(t, h.stateFile); got != agent {
			t.Errorf("the agent was restarted for content it failed on before: before %+v, now %+v", agent, got)
		}
		if got := h.unitProps(t); got != unit {
			t.Errorf("the agent's unit was restarted for content it failed on before:\nbefore %+v\nnow    %+v", unit, got)
		}
		t.Logf("restarts by result: unhealthy %v, rolled_back %v",
			h.metric(t, "hostd_unit_restarts_total", "result", "unhealthy", "unit", agentUnit),
			h.metric(t, "hostd_unit_restarts_total", "result", "rolled_back", "unit", agentUnit))
		h.checkNoSecrets(t)
	})
}

// breakTheAgentsConfig has hostd render the access key as the secret key,
// content the agent cannot start with, as an operator's slip would: it
// edits the template and reloads hostd.
func (h *host) breakTheAgentsConfig(t *testing.T) {
	t.Helper()
	h.writeTemplate(t, strings.Replace(documentedTemplate(t), ".Data.secretKey", ".Data.accessKey", 1))
	h.reload(t)
}

// checkNoSecrets fails the test if hostd's log or status shows the API
// token, the Vault root token or a secret key of the site.
func (h *host) checkNoSecrets(t *testing.T) {
	t.Helper()
	// Every secret the simulator ever issued: retired pairs included.
	secrets := map[string]string{"the Vault root token": h.vault.Token}
	for i, secret := range h.sim.Secrets() {
		secrets[fmt.Sprintf("simulator secret #%d (API token or secret key)", i+1)] = secret
	}
	out, _ := h.runStatus(t, "-json")
	if !json.Valid([]byte(out)) {
		t.Fatalf("hostd status -json printed no JSON:\n%s", out)
	}
	harness.NoSecrets(t, "hostd's log", readFile(h.hostdLog), secrets)
	harness.NoSecrets(t, "hostd status -json", out, secrets)
	harness.KeepOutput("hostd status -json of "+t.Name(), out)
	if h.metricsAddr != "" {
		harness.KeepOutput("hostd's metrics of "+t.Name(), h.scrapeMetrics(t))
	}
}

// reload sends hostd SIGHUP, as `systemctl reload hostd` does, and waits
// until hostd runs with the new configuration.
func (h *host) reload(t *testing.T) {
	t.Helper()
	const applied = "pipeline restarted with the new configuration"
	before := strings.Count(readFile(h.hostdLog), applied)
	if err := syscall.Kill(h.hostd.Pid(), syscall.SIGHUP); err != nil { // hostd alone, as systemctl reload does
		t.Fatalf("sending hostd SIGHUP: %v", err)
	}
	waitFor(t, "hostd to apply the new configuration", func() (bool, string) {
		return strings.Count(readFile(h.hostdLog), applied) > before, "not applied yet"
	})
}

// status runs `hostd status -json` and returns the snapshot and exit code.
func (h *host) status(t *testing.T) (status.Snapshot, int) {
	t.Helper()
	out, code := h.runStatus(t, "-json")
	var snap status.Snapshot
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("hostd status -json (exit %d) printed no snapshot: %v\n%s", code, err, out)
	}
	return snap, code
}

func (h *host) snapshot(t *testing.T) status.Snapshot {
	t.Helper()
	snap, _ := h.status(t)
	return snap
}

// statusTable runs `hostd status` and returns what it printed.
func (h *host) statusTable(t *testing.T) string {
	t.Helper()
	out, _ := h.runStatus(t)
	return out
}

func (h *host) runStatus(t *testing.T, args ...string) (string, int) {
	t.Helper()
	return h.runStatusCommand(t, "status", args...)
}

// runStatusCommand runs a hostd command that talks to the status socket
// (status, refresh) and returns its output and exit code (0 or 1).
func (h *host) runStatusCommand(t *testing.T, command string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), programs.Command("hostd"), append([]string{command, "-socket", h.socket}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), 0
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 1:
		return stdout.String(), 1
	default:
		t.Fatalf("hostd %s %v: %v\n%s%s", command, args, err, stdout.String(), stderr.String())
		return "", 0
	}
}

func (h *host) template(t *testing.T, snap status.Snapshot) status.Template {
	t.Helper()
	return listed(t, "template for "+h.agentConf, snap.Templates, func(tmpl status.Template) bool { return tmpl.Destination == h.agentConf })
}

func (h *host) unit(t *testing.T, snap status.Snapshot) status.Unit {
	t.Helper()
	return listed(t, "unit "+h.unitName, snap.Units, func(u status.Unit) bool { return u.Name == h.unitName })
}

// listed returns the entry of a list in hostd's status that is what the
// test looks for, and fails the test, showing the list, when there is none.
func listed[T any](t *testing.T, what string, entries []T, is func(T) bool) T {
	t.Helper()
	i := slices.IndexFunc(entries, is)
	if i < 0 {
		t.Fatalf("hostd status lists no %s: %+v", what, entries)
	}
	return entries[i]
}

// unitProps are the properties of the agent's unit that change when it is
// (re)started: a new invocation, a new main PID, or a restart by systemd.
type unitProps struct {
	ActiveState, SubState, MainPID, InvocationID, NRestarts string
}

func (h *host) unitProps(t *testing.T) unitProps {
	t.Helper()
	return h.propsOf(t, h.unitName)
}

// propsOf reads unit's unitProps from the host's manager.
func (h *host) propsOf(t *testing.T, unit string) unitProps {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "systemctl", "--user", "show", unit,
		"-p", "ActiveState,SubState,MainPID,InvocationID,NRestarts")
	cmd.Env = append(os.Environ(), h.manager.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl --user show %s: %v\n%s", unit, err, out)
	}
	props := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		props[k] = v
	}
	p := unitProps{props["ActiveState"], props["SubState"], props["MainPID"], props["InvocationID"], props["NRestarts"]}
	if p.MainPID == "" || p.InvocationID == "" || p.NRestarts == "" {
		t.Fatalf("systemctl --user show %s printed too little:\n%s", unit, out)
	}
	return p
}

// metric scrapes hostd's metrics and returns the sample of name with the
// given label pairs (name, value, name, value...), 0 when it is absent.
func (h *host) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	want := series(name, labels...)
	for _, line := range strings.Split(h.scrapeMetrics(t), "\n") {
		key, value, ok := strings.Cut(line, " ")
		if !ok || key != want {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("metric %s: bad value %q", key, value)
		}
		return v
	}
	return 0
}

// scrapeMetrics returns hostd's metrics in the text exposition format.
func (h *host) scrapeMetrics(t *testing.T) string {
	t.Helper()
	if h.metricsAddr == "" {
		t.Fatal("this host has no metrics endpoint")
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + h.metricsAddr + "/metrics")
	if err != nil {
		t.Fatalf("scraping hostd's metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping hostd's metrics: HTTP %d, %v\n%s", resp.StatusCode, err, body)
	}
	return string(body)
}

// series is a sample's name as the text exposition writes it: labels sorted
// by name, values quoted.
func series(name string, labels ...string) string {
	if len(labels) == 0 {
		return name
	}
	var pairs []string
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, labels[i]+"="+strconv.Quote(labels[i+1]))
	}
	sort.Strings(pairs)
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// agentSide is what a fault in Vault or in a template must leave as it was:
// agent.conf's bytes, what the agent runs on, and the agent's unit.
type agentSide struct {
	conf  string
	agent agentState
	unit  unitProps
}

func (h *host) agentSide(t *testing.T) agentSide {
	t.Helper()
	return agentSide{conf: hosttest.ReadFile(t, h.agentConf), agent: readState(t, h.stateFile), unit: h.unitProps(t)}
}

// checkAgentSideUnchanged marks the test failed for each part of the agent's
// side that is no longer as it was in before; when says since when.
func (h *host) checkAgentSideUnchanged(t *testing.T, before agentSide, when string) {
	t.Helper()
	now := h.agentSide(t)
	if now.conf != before.conf {
		t.Errorf("agent.conf changed %s", when)
	}
	if now.agent != before.agent {
		t.Errorf("the agent changed %s: before %+v, now %+v", when, before.agent, now.agent)
	}
	if now.unit != before.unit {
		t.Errorf("the agent's unit changed %s:\nbefore %+v\nnow    %+v", when, before.unit, now.unit)
	}
}

func readState(t *testing.T, stateFile string) agentState {
	t.Helper()
	s, err := readAgentState(stateFile)
	if err != nil {
		t.Fatalf("reading the agent's state: %v", err)
	}
	return s
}

package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// metricValue scrapes addr and returns the value of the series named
// exactly series (name and labels as exposed); false when it is absent.
func metricValue(t *testing.T, addr, series string) (float64, bool) {
	t.Helper()
	body, err := getMetrics(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v, true
}

// TestReloadOutcomeIsExposed: a start and each reload set
// hostd_config_last_reload_successful; a rejected reload turns it to 0
// (systemctl reload exits 0 either way) and keeps the last success's time.
func TestReloadOutcomeIsExposed(t *testing.T) {
	addr := freeAddress(t)
	started := time.Now()
	h := start(t, func(dir, socket string) string {
		return configText(testConfig{Dir: dir, Socket: socket, Destinations: []string{"agent.conf"}, Metrics: addr})
	})
	h.waitReady()
	const ok, at = "hostd_config_last_reload_successful", "hostd_config_last_reload_success_timestamp_seconds"
	if v, found := metricValue(t, addr, ok); !found || v != 1 {
		t.Fatalf("%s after the start = %v (exposed: %v), want 1", ok, v, found)
	}
	first, _ := metricValue(t, addr, at)
	if first < float64(started.Unix()) {
		t.Errorf("%s = %v, want the start (≥ %d)", at, first, started.Unix())
	}

	h.write("vault {\n")
	h.triggerReload()
	if v, _ := metricValue(t, addr, ok); v != 0 {
		t.Errorf("%s after a rejected reload = %v, want 0", ok, v)
	}
	if v, _ := metricValue(t, addr, at); v != first {
		t.Errorf("%s moved on a rejected reload: %v, was %v", at, v, first)
	}

	h.write(configText(testConfig{Dir: h.dir, Socket: h.socket, Destinations: []string{"agent.conf", "extra.conf"}, Metrics: addr}))
	h.triggerReload()
	if v, _ := metricValue(t, addr, ok); v != 1 {
		t.Errorf("%s after a good reload = %v, want 1", ok, v)
	}
	if v, _ := metricValue(t, addr, at); v < first {
		t.Errorf("%s after a good reload = %v, want ≥ %v", at, v, first)
	}

	// A reload whose metrics address is taken keeps the old endpoint: not
	// applied in full, so not a success.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	h.write(configText(testConfig{Dir: h.dir, Socket: h.socket, Destinations: []string{"agent.conf", "extra.conf"}, Metrics: taken.Addr().String()}))
	h.triggerReload()
	if v, _ := metricValue(t, addr, ok); v != 0 {
		t.Errorf("%s after a reload that could not move the endpoint = %v, want 0", ok, v)
	}
}

// TestReloadDeletesTheSeriesOfARemovedTemplate: a template and its unit
// that a reload removes leave no series behind, in particular no
// unit_restart_pending of 1 for the restart the reload dropped.
func TestReloadDeletesTheSeriesOfARemovedTemplate(t *testing.T) {
	vault := vaulttest.Start(t)
	vault.Mount("kv", "kv", nil)
	vault.Write("kv/agent", hosttest.AgentKeys("A1", "S-one"))
	// No systemd here: every restart of old.service fails to reach the bus
	// and stays pending, as a batch dropped at a reload would.
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(t.TempDir(), "no-bus"))
	addr := freeAddress(t)

	var kept, removed string
	text := func(dir, socket string, withOld bool) string {
		kept, removed = filepath.Join(dir, "agent.conf"), filepath.Join(dir, "old.conf")
		c := hosttest.Config{
			VaultAddress:    vault.Addr,
			TokenFile:       filepath.Join(dir, "vault-token"),
			Templates:       []hosttest.Template{{Contents: hosttest.AgentTemplate, Destination: kept}},
			Restart:         hosttest.RestartAtOnce(),
			Socket:          socket,
			TelemetryListen: addr,
		}
		if withOld {
			c.Templates = append(c.Templates, hosttest.Template{Contents: hosttest.AgentTemplate, Destination: removed, Unit: "old.service"})
		}
		return c.Text()
	}
	h := start(t, func(dir, socket string) string {
		if err := os.WriteFile(filepath.Join(dir, "vault-token"), []byte(vault.RootToken), 0o600); err != nil {
			t.Fatal(err)
		}
		return text(dir, socket, true)
	})
	h.waitReady()
	hosttest.WaitFile(t, removed, "accesskeyid=A1\nsecretaccesskey=S-one\n")
	// The first restart has failed and its retry waits (RetryInterval):
	// nothing of old.service is under way when the reload comes.
	failed, pending := `hostd_unit_restarts_total{result="error",unit="old.service"}`, `hostd_unit_restart_pending{unit="old.service"}`
	poll.Within(t, waitFor, 20*time.Millisecond, pending+" to become 1 after a failed restart", func() (bool, string) {
		n, _ := metricValue(t, addr, failed)
		v, _ := metricValue(t, addr, pending)
		return n >= 1 && v == 1, fmt.Sprintf("%v failed restarts, pending %v", n, v)
	})

	h.write(text(h.dir, h.socket, false))
	h.triggerReload()
	body, err := getMetrics(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, removed) || strings.Contains(line, "old.service") {
			t.Errorf("series of the removed template or unit still exposed: %s", line)
		}
	}
	if !strings.Contains(body, `hostd_template_last_render_timestamp_seconds{template="`+kept+`"}`) {
		t.Errorf("the kept template's series are gone:\n%s", body)
	}
}

package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

func TestReloadOutcome(t *testing.T) {
	m, _ := newTestMetrics()
	m.Publish(event.Reload{Time: t0, OK: true})
	expect(t, m, reloadText("1", "1.7723664e+09"),
		"hostd_config_last_reload_successful", "hostd_config_last_reload_success_timestamp_seconds")

	// A rejected reload: 0, and the last success keeps its time.
	m.Publish(event.Reload{Time: t0.Add(time.Minute), OK: false})
	expect(t, m, reloadText("0", "1.7723664e+09"),
		"hostd_config_last_reload_successful", "hostd_config_last_reload_success_timestamp_seconds")

	m.Publish(event.Reload{Time: t0.Add(2 * time.Minute), OK: true})
	expect(t, m, reloadText("1", "1.77236652e+09"),
		"hostd_config_last_reload_successful", "hostd_config_last_reload_success_timestamp_seconds")
}

func reloadText(ok, when string) string {
	return `
# HELP hostd_config_last_reload_success_timestamp_seconds When the configuration was last loaded and applied, at the start or on a reload (Unix time).
# TYPE hostd_config_last_reload_success_timestamp_seconds gauge
hostd_config_last_reload_success_timestamp_seconds ` + when + `
# HELP hostd_config_last_reload_successful 1 if the last configuration load (the start or the latest reload) was applied, 0 if it was rejected or applied only in part.
# TYPE hostd_config_last_reload_successful gauge
hostd_config_last_reload_successful ` + ok + "\n"
}

// TestReloadDeletesTheSeriesOfRemovedTemplatesAndUnits: after a reload
// drops a template and its unit, none of their series is exposed any more
// (a restart_pending{unit} of 1 left behind would be a false alert); the
// series of what still runs stay.
func TestReloadDeletesTheSeriesOfRemovedTemplatesAndUnits(t *testing.T) {
	m, _ := newTestMetrics()
	const (
		keptTemplate, goneTemplate = "/etc/sigsci/agent.conf", "/etc/old/old.conf"
		keptUnit, goneUnit         = "sigsci-agent.service", "old.service"
	)
	for _, tpl := range []struct{ dest, unit string }{{keptTemplate, keptUnit}, {goneTemplate, goneUnit}} {
		m.Publish(event.Render{Time: t0, Template: tpl.dest, Unit: tpl.unit, Changed: true})
		m.Publish(event.Render{Time: t0, Template: tpl.dest, Unit: tpl.unit, Err: "missing key"})
		m.Publish(event.Pending{Time: t0, Unit: tpl.unit, Due: t0.Add(time.Minute)})
		m.Publish(event.Restart{Time: t0.Add(2 * time.Second), Unit: tpl.unit, Result: event.ResultUnhealthy, Duration: time.Second})
		m.Publish(event.Restart{Time: t0.Add(3 * time.Second), Unit: tpl.unit, Result: event.ResultRolledBack, Duration: time.Second, RolledBack: true})
	}
	// The old unit's next batch was scheduled when the reload dropped it.
	m.Publish(event.Pending{Time: t0.Add(time.Minute), Unit: goneUnit, Due: t0.Add(time.Hour)})

	m.Publish(event.Reload{Time: t0.Add(2 * time.Minute), OK: true, Templates: []string{keptTemplate}, Units: []string{keptUnit}})

	text := exposition(t, m)
	for _, gone := range []string{goneTemplate, goneUnit} {
		if strings.Contains(text, gone) {
			t.Errorf("a series of %s is still exposed:\n%s", gone, grepLines(text, gone))
		}
	}
	for _, kept := range []string{
		`hostd_template_renders_total{result="changed",template="/etc/sigsci/agent.conf"} 1`,
		`hostd_template_renders_total{result="error",template="/etc/sigsci/agent.conf"} 1`,
		`hostd_template_last_render_timestamp_seconds{template="/etc/sigsci/agent.conf"}`,
		`hostd_template_last_change_timestamp_seconds{template="/etc/sigsci/agent.conf"}`,
		`hostd_unit_restarts_total{result="rolled_back",unit="sigsci-agent.service"} 1`,
		`hostd_unit_restart_duration_seconds_count{unit="sigsci-agent.service"} 2`,
		`hostd_unit_rollbacks_total{unit="sigsci-agent.service"} 1`,
		`hostd_unit_restart_pending{unit="sigsci-agent.service"} 0`,
	} {
		if !strings.Contains(text, kept) {
			t.Errorf("exposition lacks %s", kept)
		}
	}

	// A unit that comes back later starts from fresh series.
	m.Publish(event.Pending{Time: t0.Add(3 * time.Minute), Unit: goneUnit, Due: t0.Add(4 * time.Minute)})
	if got := testutil.ToFloat64(m.restartPending.WithLabelValues(goneUnit)); got != 1 {
		t.Errorf("restart_pending of a unit configured again = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(m.restarts); got != 2 {
		t.Errorf("unit_restarts_total has %d series, want the kept unit's 2", got)
	}
}

// A rejected reload says what still runs, which is the previous set: the
// series stay.
func TestRejectedReloadKeepsTheSeries(t *testing.T) {
	m, _ := newTestMetrics()
	m.Publish(event.Render{Time: t0, Template: "/x", Changed: true})
	m.Publish(event.Reload{Time: t0, OK: false, Templates: []string{"/x"}})
	if got := testutil.CollectAndCount(m.renders); got != 1 {
		t.Errorf("renders series after a rejected reload: %d, want 1", got)
	}
}

func grepLines(text, s string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

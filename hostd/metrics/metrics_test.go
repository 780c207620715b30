package metrics

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newTestMetrics() (*Metrics, *clocktest.Clock) {
	c := clocktest.New(t0)
	return New(Options{Version: "1.2.3", Now: c.Now}), c
}

func expect(t *testing.T, m *Metrics, want string, names ...string) {
	t.Helper()
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

// exposition scrapes m as Prometheus would.
func exposition(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func TestBuildInfo(t *testing.T) {
	m, _ := newTestMetrics()
	expect(t, m, `
# HELP hostd_build_info Always 1; labels say which hostd is running.
# TYPE hostd_build_info gauge
hostd_build_info{goversion="`+runtime.Version()+`",version="1.2.3"} 1
`, "hostd_build_info")
}

func TestAuthEvents(t *testing.T) {
	m, c := newTestMetrics()
	expiry := t0.Add(time.Hour)

	m.Publish(event.Auth{Time: t0, Method: "approle", OK: false, Err: "permission denied"})
	m.Publish(event.Auth{Time: t0, Method: "approle", OK: true, TokenExpiry: expiry, Renewable: true})
	m.Publish(event.Auth{Time: t0, Method: "approle", Renewal: true, OK: true, TokenExpiry: expiry})
	expect(t, m, `
# HELP hostd_auth_attempts_total Vault logins and token renewals, by auth method and result (success or failure).
# TYPE hostd_auth_attempts_total counter
hostd_auth_attempts_total{method="approle",result="failure"} 1
hostd_auth_attempts_total{method="approle",result="success"} 2
# HELP hostd_authenticated 1 while hostd holds a Vault token that has not expired, else 0.
# TYPE hostd_authenticated gauge
hostd_authenticated 1
# HELP hostd_token_expiry_timestamp_seconds When hostd's current Vault token expires (Unix time); 0 when it has no expiry or none is known.
# TYPE hostd_token_expiry_timestamp_seconds gauge
hostd_token_expiry_timestamp_seconds 1.77237e+09
`, "hostd_auth_attempts_total", "hostd_authenticated", "hostd_token_expiry_timestamp_seconds")

	// A failed renewal keeps the token until it expires...
	m.Publish(event.Auth{Time: t0, Method: "approle", Renewal: true, OK: false, Err: "connection refused"})
	if v := testutil.ToFloat64(m.authenticatedFn); v != 1 {
		t.Fatalf("authenticated after a failed renewal = %v, want 1", v)
	}
	// ...and the gauge drops when it does, with no further event.
	c.Set(expiry)
	if v := testutil.ToFloat64(m.authenticatedFn); v != 0 {
		t.Fatalf("authenticated after the token expired = %v, want 0", v)
	}
	// A new login brings it back; a failed login takes it away at once.
	m.Publish(event.Auth{Time: expiry, Method: "approle", OK: true, TokenExpiry: expiry.Add(time.Hour)})
	if v := testutil.ToFloat64(m.authenticatedFn); v != 1 {
		t.Fatalf("authenticated after a new login = %v, want 1", v)
	}
	m.Publish(event.Auth{Time: expiry, Method: "approle", OK: false, Err: "invalid secret id"})
	if v := testutil.ToFloat64(m.authenticatedFn); v != 0 {
		t.Fatalf("authenticated after a failed login = %v, want 0", v)
	}
}

func TestVaultRequestEvents(t *testing.T) {
	m, _ := newTestMetrics()
	for _, code := range []int{200, 200, 403, 0} {
		m.Publish(event.VaultRequest{Time: t0, StatusCode: code})
	}
	expect(t, m, `
# HELP hostd_vault_request_errors_total Requests the template engine made to Vault that got no answer (connection or TLS errors).
# TYPE hostd_vault_request_errors_total counter
hostd_vault_request_errors_total 1
# HELP hostd_vault_requests_total Requests the template engine made to Vault that got an answer, by HTTP status code.
# TYPE hostd_vault_requests_total counter
hostd_vault_requests_total{code="200"} 2
hostd_vault_requests_total{code="403"} 1
`, "hostd_vault_requests_total", "hostd_vault_request_errors_total")
}

func TestRenderEvents(t *testing.T) {
	m, _ := newTestMetrics()
	const dest = "/etc/sigsci/agent.conf"
	m.Publish(event.Render{Time: t0, Template: dest, Changed: true, Backup: dest + ".bak"})
	m.Publish(event.Render{Time: t0.Add(time.Minute), Template: dest})
	m.Publish(event.Render{Time: t0.Add(2 * time.Minute), Template: dest, Err: "missing key accesskeyid"})
	expect(t, m, `
# HELP hostd_template_last_change_timestamp_seconds When the template's destination last got new content (Unix time).
# TYPE hostd_template_last_change_timestamp_seconds gauge
hostd_template_last_change_timestamp_seconds{template="/etc/sigsci/agent.conf"} 1.7723664e+09
# HELP hostd_template_last_render_timestamp_seconds When the template last rendered without error (Unix time).
# TYPE hostd_template_last_render_timestamp_seconds gauge
hostd_template_last_render_timestamp_seconds{template="/etc/sigsci/agent.conf"} 1.77236646e+09
# HELP hostd_template_renders_total Template renders by destination and result: changed, unchanged or error (the old file stays).
# TYPE hostd_template_renders_total counter
hostd_template_renders_total{result="changed",template="/etc/sigsci/agent.conf"} 1
hostd_template_renders_total{result="error",template="/etc/sigsci/agent.conf"} 1
hostd_template_renders_total{result="unchanged",template="/etc/sigsci/agent.conf"} 1
`, "hostd_template_renders_total", "hostd_template_last_render_timestamp_seconds", "hostd_template_last_change_timestamp_seconds")
}

func TestRestartEvents(t *testing.T) {
	m, _ := newTestMetrics()
	const unit = "sigsci-agent.service"
	m.Publish(event.Pending{Time: t0, Unit: unit, Due: t0.Add(time.Minute)})
	expect(t, m, pendingText(1), "hostd_unit_restart_pending")

	start := t0.Add(time.Minute)
	m.Publish(event.Restart{Time: start.Add(80 * time.Millisecond), Unit: unit, Result: event.ResultUnhealthy, Duration: 80 * time.Millisecond, Err: "failed"})
	m.Publish(event.Restart{Time: start.Add(3 * time.Second), Unit: unit, Result: event.ResultRolledBack, Duration: 2 * time.Second, RolledBack: true})
	expect(t, m, `
# HELP hostd_unit_restarts_total Unit restarts after a change, by result: done, systemd's job results, unhealthy, error, rolled_back, rollback_failed.
# TYPE hostd_unit_restarts_total counter
hostd_unit_restarts_total{result="rolled_back",unit="sigsci-agent.service"} 1
hostd_unit_restarts_total{result="unhealthy",unit="sigsci-agent.service"} 1
# HELP hostd_unit_rollbacks_total Changes a unit did not survive, whose previous files were restored.
# TYPE hostd_unit_rollbacks_total counter
hostd_unit_rollbacks_total{unit="sigsci-agent.service"} 1
# HELP hostd_unit_restart_duration_seconds Time from asking systemd to restart a unit until it was judged healthy or failed.
# TYPE hostd_unit_restart_duration_seconds histogram
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="0.05"} 0
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="0.1"} 1
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="0.25"} 1
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="0.5"} 1
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="1"} 1
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="2.5"} 2
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="5"} 2
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="10"} 2
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="30"} 2
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="60"} 2
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="120"} 2
hostd_unit_restart_duration_seconds_bucket{unit="sigsci-agent.service",le="+Inf"} 2
hostd_unit_restart_duration_seconds_sum{unit="sigsci-agent.service"} 2.08
hostd_unit_restart_duration_seconds_count{unit="sigsci-agent.service"} 2
`+pendingText(0), "hostd_unit_restarts_total", "hostd_unit_rollbacks_total", "hostd_unit_restart_duration_seconds", "hostd_unit_restart_pending")
}

func TestPendingSurvivesTheEndOfAnEarlierRestart(t *testing.T) {
	m, _ := newTestMetrics()
	const unit = "sigsci-agent.service"
	m.Publish(event.Pending{Time: t0, Unit: unit, Due: t0.Add(time.Second)})
	// The restart starts at t0+1s; a change arrives while it runs.
	m.Publish(event.Pending{Time: t0.Add(1500 * time.Millisecond), Unit: unit, Due: t0.Add(4 * time.Second)})
	m.Publish(event.Restart{Time: t0.Add(2 * time.Second), Unit: unit, Result: event.ResultDone, Duration: time.Second})
	expect(t, m, pendingText(1), "hostd_unit_restart_pending")

	// The next restart covers that change.
	m.Publish(event.Restart{Time: t0.Add(5 * time.Second), Unit: unit, Result: event.ResultDone, Duration: time.Second})
	expect(t, m, pendingText(0), "hostd_unit_restart_pending")
}

func TestRestartDueFollowsTheScheduledRestart(t *testing.T) {
	m, _ := newTestMetrics()
	const unit = "sigsci-agent.service"
	due := t0.Add(6 * time.Hour) // held for the maintenance window
	m.Publish(event.Pending{Time: t0, Unit: unit, Due: due})
	expect(t, m, dueText(unixSeconds(due)), "hostd_unit_restart_due_timestamp_seconds")

	// systemd refuses the restart: it is scheduled again, later.
	retry := due.Add(30 * time.Second)
	m.Publish(event.Restart{Time: due, Unit: unit, Result: event.ResultError})
	m.Publish(event.Pending{Time: due, Unit: unit, Due: retry})
	expect(t, m, dueText(unixSeconds(retry)), "hostd_unit_restart_due_timestamp_seconds")

	m.Publish(event.Restart{Time: retry.Add(time.Second), Unit: unit, Result: event.ResultDone, Duration: time.Second})
	expect(t, m, dueText(0), "hostd_unit_restart_due_timestamp_seconds")
}

func dueText(v float64) string {
	return `
# HELP hostd_unit_restart_due_timestamp_seconds When the unit's scheduled restart is due (Unix time), after debounce, splay and maintenance window; 0 while none is scheduled.
# TYPE hostd_unit_restart_due_timestamp_seconds gauge
hostd_unit_restart_due_timestamp_seconds{unit="sigsci-agent.service"} ` + strconv.FormatFloat(v, 'g', -1, 64) + "\n"
}

func TestLastRenderSuccessfulTellsAFailingTemplate(t *testing.T) {
	m, _ := newTestMetrics()
	const dest = "/etc/sigsci/agent.conf"
	text := func(v string) string {
		return `
# HELP hostd_template_last_render_successful 1 when the template's last render succeeded, 0 when it failed (the old file stays).
# TYPE hostd_template_last_render_successful gauge
hostd_template_last_render_successful{template="/etc/sigsci/agent.conf"} ` + v + "\n"
	}
	m.Publish(event.Render{Time: t0, Template: dest, Changed: true})
	expect(t, m, text("1"), "hostd_template_last_render_successful")
	m.Publish(event.Render{Time: t0.Add(time.Minute), Template: dest, Err: "missing key accesskeyid"})
	expect(t, m, text("0"), "hostd_template_last_render_successful")
	m.Publish(event.Render{Time: t0.Add(2 * time.Minute), Template: dest})
	expect(t, m, text("1"), "hostd_template_last_render_successful")
}

// A rollback counter that first appeared at 1 would show Prometheus no
// increase: the unit's series are there, at 0, from its template's first
// render on.
func TestUnitSeriesStartAtZeroWithTheFirstRender(t *testing.T) {
	m, _ := newTestMetrics()
	m.Publish(event.Render{Time: t0, Template: "/etc/sigsci/agent.conf", Unit: "sigsci-agent.service", Changed: true})
	expect(t, m, `
# HELP hostd_unit_restart_due_timestamp_seconds When the unit's scheduled restart is due (Unix time), after debounce, splay and maintenance window; 0 while none is scheduled.
# TYPE hostd_unit_restart_due_timestamp_seconds gauge
hostd_unit_restart_due_timestamp_seconds{unit="sigsci-agent.service"} 0
# HELP hostd_unit_rollbacks_total Changes a unit did not survive, whose previous files were restored.
# TYPE hostd_unit_rollbacks_total counter
hostd_unit_rollbacks_total{unit="sigsci-agent.service"} 0
`+pendingText(0), "hostd_unit_rollbacks_total", "hostd_unit_restart_pending", "hostd_unit_restart_due_timestamp_seconds")

	// Seeing the unit again does not reset what it counted.
	m.Publish(event.Pending{Time: t0, Unit: "sigsci-agent.service", Due: t0.Add(time.Second)})
	m.Publish(event.Restart{Time: t0.Add(3 * time.Second), Unit: "sigsci-agent.service", Result: event.ResultRolledBack, Duration: time.Second, RolledBack: true})
	m.Publish(event.Render{Time: t0.Add(time.Minute), Template: "/etc/sigsci/agent.conf", Unit: "sigsci-agent.service"})
	expect(t, m, `
# HELP hostd_unit_rollbacks_total Changes a unit did not survive, whose previous files were restored.
# TYPE hostd_unit_rollbacks_total counter
hostd_unit_rollbacks_total{unit="sigsci-agent.service"} 1
`, "hostd_unit_rollbacks_total")
}

func pendingText(v int) string {
	return `
# HELP hostd_unit_restart_pending 1 while a restart of the unit is scheduled (debounce, splay or maintenance window), else 0.
# TYPE hostd_unit_restart_pending gauge
hostd_unit_restart_pending{unit="sigsci-agent.service"} ` + map[int]string{0: "0", 1: "1"}[v] + "\n"
}

func TestErrorTextNeverReachesTheExposition(t *testing.T) {
	m := New(Options{Version: "1.2.3"})
	const canary = "s.CanaryVaultToken0123456789"
	var sink event.Sink = m
	sink.Publish(event.Auth{Time: t0, Method: "approle", Err: "login failed with token " + canary})
	sink.Publish(event.VaultRequest{Time: t0, Err: "dial: " + canary})
	sink.Publish(event.Render{Time: t0, Template: "/etc/sigsci/agent.conf", Err: "render: " + canary})
	sink.Publish(event.Restart{Time: t0, Unit: "sigsci-agent.service", Result: event.ResultFailed, Err: canary})

	text := exposition(t, m)
	if strings.Contains(text, "CanaryVaultToken") {
		t.Fatalf("the exposition contains an error text:\n%s", text)
	}
	// The same scrape does carry the events' effects and the runtime metrics.
	for _, want := range []string{
		`hostd_auth_attempts_total{method="approle",result="failure"} 1`,
		`hostd_vault_request_errors_total 1`,
		`hostd_template_renders_total{result="error",template="/etc/sigsci/agent.conf"} 1`,
		`hostd_unit_restarts_total{result="failed",unit="sigsci-agent.service"} 1`,
		`hostd_build_info{`,
		`process_resident_memory_bytes `,
		`go_goroutines `,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}

func TestMetricNamesFollowTheConvention(t *testing.T) {
	m, _ := newTestMetrics()
	m.Publish(event.Pending{Time: t0, Unit: "u.service"})
	m.Publish(event.Restart{Time: t0, Unit: "u.service", Result: event.ResultDone, Duration: time.Second, RolledBack: true})
	m.Publish(event.Render{Time: t0, Template: "/x", Changed: true})
	m.Publish(event.Auth{Time: t0, Method: "cert", OK: true})
	m.Publish(event.VaultRequest{Time: t0, StatusCode: 200})
	m.Publish(event.VaultRequest{Time: t0})
	m.Publish(event.Reload{Time: t0, OK: true, Templates: []string{"/x"}, Units: []string{"u.service"}})
	m.Publish(event.AgentKeys{Time: t0, Keys: []event.AgentKey{{Unit: "u.service", Site: "www", AccessKey: "ak"}}})
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "hostd_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
	want := []string{
		"hostd_build_info", "hostd_auth_attempts_total", "hostd_authenticated",
		"hostd_token_expiry_timestamp_seconds", "hostd_vault_requests_total",
		"hostd_vault_request_errors_total", "hostd_template_renders_total",
		"hostd_template_last_render_timestamp_seconds", "hostd_template_last_change_timestamp_seconds",
		"hostd_unit_restarts_total", "hostd_unit_restart_duration_seconds",
		"hostd_unit_rollbacks_total", "hostd_unit_restart_pending",
		"hostd_config_last_reload_successful", "hostd_config_last_reload_success_timestamp_seconds",
		"hostd_unit_restart_due_timestamp_seconds", "hostd_template_last_render_successful",
		"hostd_fleet_reports_total", "hostd_agent_key_info",
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[string]bool)
	for _, f := range families {
		have[f.GetName()] = true
	}
	for _, name := range want {
		if !have[name] {
			t.Errorf("%s is not exposed", name)
		}
	}
}

// TestTokenRejectedByVaultIsNotAuthenticated: Vault called the token
// invalid (revoked); hostd dropped it, so the gauge must say 0 at once,
// not when the next login fails.
func TestTokenRejectedByVaultIsNotAuthenticated(t *testing.T) {
	m, _ := newTestMetrics()
	m.Publish(event.Auth{Time: t0, Method: "approle", OK: true, TokenExpiry: t0.Add(time.Hour)})
	m.Publish(event.Auth{Time: t0, Method: "approle", Renewal: true, Rejected: true, Err: "vault rejected the token as invalid"})
	if v := testutil.ToFloat64(m.authenticatedFn); v != 0 {
		t.Errorf("authenticated after Vault rejected the token = %v, want 0", v)
	}
	if v := testutil.ToFloat64(m.tokenExpiry); v != 0 {
		t.Errorf("token expiry after the token was dropped = %v, want 0 (none known)", v)
	}
}

// TestRestartDurationLeavesOutAttemptsWithoutAJob: a restart systemd did not
// accept (no job queued: D-Bus or polkit refused it) took no restart time;
// its call latency must not mix into the restart durations. It is counted.
func TestRestartDurationLeavesOutAttemptsWithoutAJob(t *testing.T) {
	m, _ := newTestMetrics()
	const unit = "sigsci-agent.service"
	m.Publish(event.Restart{Time: t0, Unit: unit, Result: event.ResultError, Duration: 3 * time.Millisecond, Err: "access denied"})
	if n := testutil.CollectAndCount(m.restartDuration); n != 0 {
		t.Errorf("an attempt that queued no job was observed (%d series)", n)
	}
	if v := testutil.ToFloat64(m.restarts.WithLabelValues(unit, "error")); v != 1 {
		t.Errorf(`unit_restarts_total{result="error"} = %v, want 1`, v)
	}
	m.Publish(event.Restart{Time: t0, Unit: unit, Result: event.ResultFailed, Duration: 2 * time.Second, Err: "job failed"})
	if n := testutil.CollectAndCount(m.restartDuration); n != 1 {
		t.Errorf("a restart whose job failed must be observed (%d series)", n)
	}
}

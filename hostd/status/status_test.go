package status

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// healthySnapshot is a host where everything works.
func healthySnapshot() Snapshot {
	return Snapshot{
		Version:     "1.2.3",
		StartedAt:   t0.Add(-3 * time.Hour),
		GeneratedAt: t0,
		Vault:       Vault{Address: "https://vault.example:8200", Requests: 1200, Errors: 3, LastRequest: t0.Add(-4 * time.Second), LastStatusCode: 200},
		Auth: Auth{Method: "approle", Authenticated: true, TokenExpiry: t0.Add(47*time.Minute + 12*time.Second), Renewable: true,
			LastLogin: t0.Add(-3 * time.Hour), LastRenewal: t0.Add(-10 * time.Minute)},
		Templates: []Template{{Destination: "/etc/sigsci/agent.conf", Unit: "sigsci-agent.service", Renders: 360, Changes: 2,
			LastRender: t0.Add(-4 * time.Second), LastChange: t0.Add(-3 * time.Hour)}},
		Units: []Unit{{Name: "sigsci-agent.service", ActiveState: "active", SubState: "running", Restarts: 2,
			LastRestart: t0.Add(-3 * time.Hour), LastResult: event.ResultDone, LastRestartDuration: 1.2}},
	}
}

func TestHealthy(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Snapshot)
		want   []string // one reason each; nil means healthy
	}{
		{"everything works", func(*Snapshot) {}, nil},
		{"no templates and no units", func(s *Snapshot) { s.Templates, s.Units = nil, nil }, nil},
		{"not authenticated", func(s *Snapshot) { s.Auth.Authenticated = false }, []string{"not authenticated to Vault"}},
		{"not authenticated, with the reason", func(s *Snapshot) {
			s.Auth.Authenticated = false
			s.Auth.LastError = "invalid secret id"
		}, []string{"not authenticated to Vault: invalid secret id"}},
		{"template never rendered", func(s *Snapshot) { s.Templates[0].LastRender = time.Time{} }, []string{"template /etc/sigsci/agent.conf: not rendered yet"}},
		{"last render failed", func(s *Snapshot) { s.Templates[0].LastError = "missing key secretKey" }, []string{"template /etc/sigsci/agent.conf: last render failed: missing key secretKey"}},
		{"unit failed", func(s *Snapshot) { s.Units[0].ActiveState, s.Units[0].SubState = "failed", "failed" }, []string{"unit sigsci-agent.service is failed/failed"}},
		{"unit activating", func(s *Snapshot) { s.Units[0].ActiveState, s.Units[0].SubState = "activating", "auto-restart" }, []string{"unit sigsci-agent.service is activating/auto-restart"}},
		{"unit state unreadable", func(s *Snapshot) { s.Units[0].StateError = "dbus: no connection" }, []string{"unit sigsci-agent.service: state unknown: dbus: no connection"}},
		{"last restart failed", func(s *Snapshot) {
			s.Units[0].LastResult = event.ResultFailed
			s.Units[0].LastError = "job failed"
		}, []string{"unit sigsci-agent.service: last restart failed (failed): job failed"}},
		{"last restart timed out", func(s *Snapshot) { s.Units[0].LastResult = event.ResultJobTimeout }, []string{"unit sigsci-agent.service: last restart failed (job_timeout)"}},
		{"rolled back", func(s *Snapshot) { s.Units[0].RolledBack = true }, []string{"unit sigsci-agent.service: last restart was rolled back to the previous configuration"}},
		{"unit never restarted is fine", func(s *Snapshot) { s.Units[0].LastResult = "" }, nil},
		// An operator stopped the agent: hostd left it stopped, which is no
		// failed restart; the agent not running is the problem shown.
		{"stopped unit not restarted", func(s *Snapshot) {
			s.Units[0].LastResult, s.Units[0].ActiveState, s.Units[0].SubState = "not_running", "inactive", "dead"
		}, []string{"unit sigsci-agent.service is inactive/dead"}},
		{"vault failing within the grace", func(s *Snapshot) {
			s.Vault.FailingSince, s.Vault.Grace, s.Vault.LastError = t0.Add(-50*time.Second), Seconds(time.Minute), "no answer"
		}, nil},
		{"vault failing beyond the grace", func(s *Snapshot) {
			s.Vault.FailingSince, s.Vault.Grace, s.Vault.LastError = t0.Add(-70*time.Second), Seconds(time.Minute), "vault did not answer within 15s"
		}, []string{"vault: every request failed for 1m10s (last: vault did not answer within 15s); the agent runs on the keys it has"}},
		{"several problems at once", func(s *Snapshot) {
			s.Auth.Authenticated = false
			s.Templates[0].LastError = "x"
			s.Units[0].ActiveState = "inactive"
			s.Units[0].SubState = ""
			s.Units[0].RolledBack = true
		}, []string{
			"not authenticated to Vault",
			"template /etc/sigsci/agent.conf: last render failed: x",
			"unit sigsci-agent.service is inactive",
			"unit sigsci-agent.service: last restart was rolled back to the previous configuration",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := healthySnapshot()
			tc.change(&s)
			ok, reasons := Healthy(s)
			if ok != (tc.want == nil) || !slices.Equal(reasons, tc.want) {
				t.Errorf("Healthy = %v, %q; want %v, %q", ok, reasons, tc.want == nil, tc.want)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	s := healthySnapshot()
	s.Units[0].PendingDue = t0.Add(25 * time.Second)
	s.Units[0].PendingCause = "/etc/sigsci/agent.conf"
	got := table(t, s)
	want := strings.Join([]string{
		"hostd 1.2.3  healthy                     up 3h",
		"vault        https://vault.example:8200  last request 4s ago: HTTP 200; 1200 requests, 3 errors",
		"auth         approle                     authenticated, token expires in 47m12s, renewable",
		"",
		"TEMPLATE                UNIT                  LAST RENDER  LAST CHANGE  RESULT",
		"/etc/sigsci/agent.conf  sigsci-agent.service  4s ago       3h ago       ok",
		"",
		"UNIT                  STATE           LAST RESTART  RESULT  PENDING",
		"sigsci-agent.service  active/running  3h ago        done    restart in 25s (/etc/sigsci/agent.conf)",
		"",
	}, "\n")
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteTableShowsWhatEachUnitRunsOn(t *testing.T) {
	s := healthySnapshot()
	s.Units[0].RunningOn = []RunningFile{
		{Destination: "/etc/sigsci/agent.conf", Digest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Since: t0.Add(-3 * time.Hour)},
		{Destination: "/etc/sigsci/extra.conf"},
	}
	assertTableHas(t, s,
		"UNIT                  FILE                    RUNS ON                      SINCE",
		"sigsci-agent.service  /etc/sigsci/agent.conf  sha256:9f86d081884c          3h ago",
		"sigsci-agent.service  /etc/sigsci/extra.conf  older content: restart owed  never",
	)
}

func TestWriteTableUnhealthy(t *testing.T) {
	s := healthySnapshot()
	s.Auth.Authenticated = false
	s.Auth.LastError = "permission denied"
	s.Auth.LastErrorTime = t0.Add(-90 * time.Second)
	s.Templates = append(s.Templates, Template{Destination: "/etc/sigsci/extra.conf"})
	s.Units[0].ActiveState, s.Units[0].SubState = "failed", "failed"
	s.Units[0].RolledBack = true
	s.StartedAt = t0.Add(-50 * time.Hour)
	got := table(t, s)
	lines := strings.Split(got, "\n")
	for _, want := range []string{
		"hostd 1.2.3  UNHEALTHY                   up 2d2h",
		"auth         approle                     NOT AUTHENTICATED, last error 1m30s ago: permission denied",
		"/etc/sigsci/extra.conf  -                     never        never        waiting",
		"sigsci-agent.service  failed/failed  3h ago        done, rolled back  -",
		"problems:",
		"  - not authenticated to Vault: permission denied",
		"  - template /etc/sigsci/extra.conf: not rendered yet",
		"  - unit sigsci-agent.service is failed/failed",
		"  - unit sigsci-agent.service: last restart was rolled back to the previous configuration",
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("missing line %q in:\n%s", want, got)
		}
	}
}

// table is WriteTable's output for s.
func table(t *testing.T, s Snapshot) string {
	t.Helper()
	var b strings.Builder
	if err := WriteTable(&b, s); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// assertTableHas fails for each of want that the table of s does not
// contain.
func assertTableHas(t *testing.T, s Snapshot, want ...string) {
	t.Helper()
	got := table(t, s)
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("table lacks %q:\n%s", w, got)
		}
	}
}

// TestSnapshotJSONFieldNames pins the JSON interface of `hostd status -json`.
func TestSnapshotJSONFieldNames(t *testing.T) {
	s := healthySnapshot()
	s.Units[0].PendingDue = t0
	var b strings.Builder
	if err := WriteJSON(&b, s); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string { return slices.Sorted(maps.Keys(v.(map[string]any))) }
	checks := map[string]struct {
		got  []string
		want []string
	}{
		"top":      {keys(m), []string{"auth", "generated_at", "started_at", "templates", "units", "vault", "version"}},
		"vault":    {keys(m["vault"]), []string{"address", "errors", "last_request", "last_status_code", "requests"}},
		"auth":     {keys(m["auth"]), []string{"authenticated", "last_login", "last_renewal", "method", "renewable", "token_expiry"}},
		"template": {keys(m["templates"].([]any)[0]), []string{"changes", "destination", "errors", "last_change", "last_render", "renders", "unit"}},
		"unit":     {keys(m["units"].([]any)[0]), []string{"active_state", "last_restart", "last_restart_seconds", "last_result", "name", "pending_due", "restarts", "rollbacks", "rolled_back", "sub_state"}},
	}
	for name, c := range checks {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s keys = %q, want %q", name, c.got, c.want)
		}
	}
	if !strings.Contains(b.String(), `"token_expiry": "2026-05-10T12:47:12Z"`) {
		t.Errorf("times must be RFC 3339:\n%s", b.String())
	}
}

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                             "0s",
		30 * time.Second:              "30s",
		1500 * time.Millisecond:       "2s",
		5 * time.Minute:               "5m",
		time.Hour:                     "1h",
		time.Hour + 30*time.Minute:    "1h30m",
		26 * time.Hour:                "1d2h",
		48*time.Hour + 20*time.Minute: "2d",
		-90 * time.Second:             "-1m30s",
	} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestWriteTableShowsTheLastReportPerSite(t *testing.T) {
	s := healthySnapshot()
	s.Reports = []Report{
		{Mount: "sigsci", Role: "vault-user", Site: "www", Host: "web-1", AccessKey: "ak-1", LastAttempt: t0.Add(-time.Minute), LastSuccess: t0.Add(-time.Minute)},
		{Mount: "sigsci", Role: "vault-user", Site: "api", Host: "web-1", AccessKey: "ak-api", LastAttempt: t0.Add(-5 * time.Second),
			LastSuccess: t0.Add(-time.Hour), LastError: "vault answered 403: permission denied"},
	}
	assertTableHas(t, s,
		"FLEET REPORT                 AS HOST  ACCESS KEY  LAST REPORT  RESULT",
		"sigsci/vault-user/sites/www  web-1    ak-1        1m ago       ok",
		"sigsci/vault-user/sites/api  web-1    ak-api      5s ago       error: vault answered 403: permission denied (last taken 1h ago)",
	)
}

// Vault's client and consul-template write errors over several lines, with
// tabs; the table shows each on its row, as one line, and the problems
// list likewise.
func TestWriteTableKeepsAMultiLineErrorOnItsRow(t *testing.T) {
	const vaultErr = "vault.read(sigsci/creds/vault-user/sites/www): Error making API request.\n\nURL: GET http://hostd/v1/sigsci/creds/vault-user/sites/www\nCode: 403. Errors:\n\n* 1 error occurred:\n\t* permission denied\n\n"
	const folded = "vault.read(sigsci/creds/vault-user/sites/www): Error making API request. URL: GET http://hostd/v1/sigsci/creds/vault-user/sites/www Code: 403. Errors: * 1 error occurred: * permission denied"
	s := healthySnapshot()
	s.Reports = []Report{{Mount: "sigsci", Role: "vault-user", Site: "www", Host: "web-1", AccessKey: "ak-1", LastAttempt: t0.Add(-5 * time.Second)}}
	lines := strings.Count(table(t, s), "\n")

	s.Templates[0].LastError = vaultErr
	s.Auth.LastError, s.Auth.LastErrorTime = vaultErr, t0.Add(-time.Minute)
	s.Vault.LastError = vaultErr
	s.Reports[0].LastError = vaultErr
	got := table(t, s)
	if n := strings.Count(got, "\n"); n != lines+3 { // the problems list: a blank line, its header, the template's line
		t.Errorf("the table has %d lines, want %d:\n%s", n, lines+3, got)
	}
	if strings.Contains(got, "\t") {
		t.Errorf("the table holds a tab:\n%s", got)
	}
	for _, want := range []string{
		"/etc/sigsci/agent.conf  sigsci-agent.service  4s ago       3h ago       error: " + folded,
		"last error 1m ago: " + folded,
		"; last error: " + folded,
		"ak-1        5s ago       error: " + folded,
		"  - template /etc/sigsci/agent.conf: last render failed: " + folded + "\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
}

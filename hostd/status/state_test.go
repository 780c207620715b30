package status

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
)

// canary stands in for a Vault token that leaked into an error text; it must
// never come out of status.
const canary = "hvs.CAESIcanaryTOKENdoNOTshow0123456789abcdef"

var t0 = time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)

func newTestState(c *clocktest.Clock) *State {
	return NewState(Options{
		Version:      "1.2.3",
		VaultAddress: "https://vault.example:8200",
		AuthMethod:   "approle",
		VaultGrace:   time.Minute,
		Templates: []TemplateRef{
			{Destination: "/etc/sigsci/agent.conf", Unit: "sigsci-agent.service"},
			{Destination: "/etc/sigsci/extra.conf", Unit: "sigsci-agent.service"},
		},
		Now: c.Now,
	})
}

func TestStateListsConfiguredTemplatesBeforeAnyEvent(t *testing.T) {
	c := clocktest.New(t0)
	snap := newTestState(c).Snapshot(context.Background())
	if len(snap.Templates) != 2 || snap.Templates[0].Destination != "/etc/sigsci/agent.conf" || snap.Templates[1].Unit != "sigsci-agent.service" {
		t.Errorf("templates = %+v", snap.Templates)
	}
	if len(snap.Units) != 1 || snap.Units[0].Name != "sigsci-agent.service" {
		t.Errorf("units = %+v (one unit fed by two templates)", snap.Units)
	}
	if snap.Version != "1.2.3" || !snap.StartedAt.Equal(t0) || snap.Vault.Address != "https://vault.example:8200" || snap.Auth.Method != "approle" {
		t.Errorf("snapshot = %+v", snap)
	}
	if ok, _ := Healthy(snap); ok {
		t.Error("a daemon that has not logged in or rendered must not be healthy")
	}
}

// A change that arrives while a restart runs is the next batch: the
// restart's result does not clear its announcement (as in the metrics).
func TestAPendingAnnouncedDuringARestartOutlivesItsResult(t *testing.T) {
	st := newTestState(clocktest.New(t0))
	const unit = "sigsci-agent.service"
	st.Publish(event.Pending{Time: t0, Unit: unit, Due: t0.Add(2 * time.Second)})
	// The batch starts at t0+2s; a change lands at t0+5s; the restart and
	// its health check end at t0+10s.
	st.Publish(event.Pending{Time: t0.Add(5 * time.Second), Unit: unit, Due: t0.Add(15 * time.Second)})
	st.Publish(event.Restart{Time: t0.Add(10 * time.Second), Unit: unit, Result: event.ResultDone, Duration: 8 * time.Second})
	if u := st.Snapshot(context.Background()).Units[0]; !u.PendingDue.Equal(t0.Add(15 * time.Second)) {
		t.Fatalf("after the first batch's result the unit shows pending due %s, want the next batch's %s", u.PendingDue, t0.Add(15*time.Second))
	}
}

func TestStateFollowsEvents(t *testing.T) {
	c := clocktest.New(t0)
	st := newTestState(c)
	expiry := t0.Add(time.Hour)
	st.Publish(event.Auth{Time: t0, Method: "approle", OK: true, TokenExpiry: expiry, Renewable: true})
	st.Publish(event.VaultRequest{Time: t0.Add(time.Second), StatusCode: 200})
	st.Publish(event.VaultRequest{Time: t0.Add(2 * time.Second), StatusCode: 503})
	st.Publish(event.VaultRequest{Time: t0.Add(3 * time.Second), Err: "dial tcp: connection refused"})
	st.Publish(event.Render{Time: t0.Add(4 * time.Second), Template: "/etc/sigsci/agent.conf", Unit: "sigsci-agent.service", Changed: true, Backup: "/etc/sigsci/agent.conf.bak"})
	st.Publish(event.Render{Time: t0.Add(5 * time.Second), Template: "/etc/sigsci/extra.conf", Unit: "sigsci-agent.service"})
	st.Publish(event.Pending{Time: t0.Add(5 * time.Second), Unit: "sigsci-agent.service", Due: t0.Add(40 * time.Second), Cause: "/etc/sigsci/agent.conf"})
	c.Set(t0.Add(10 * time.Second))

	snap := st.Snapshot(context.Background())
	if !snap.Auth.Authenticated || !snap.Auth.TokenExpiry.Equal(expiry) || !snap.Auth.Renewable || !snap.Auth.LastLogin.Equal(t0) {
		t.Errorf("auth = %+v", snap.Auth)
	}
	if v := snap.Vault; v.Requests != 3 || v.Errors != 2 || v.LastStatusCode != 0 || v.LastError != "dial tcp: connection refused" {
		t.Errorf("vault = %+v", v)
	}
	agent := snap.Templates[0]
	if agent.Renders != 1 || agent.Changes != 1 || !agent.LastChange.Equal(t0.Add(4*time.Second)) || agent.LastError != "" {
		t.Errorf("agent template = %+v", agent)
	}
	if extra := snap.Templates[1]; extra.Changes != 0 || !extra.LastChange.IsZero() || !extra.LastRender.Equal(t0.Add(5*time.Second)) {
		t.Errorf("unchanged template = %+v", extra)
	}
	if u := snap.Units[0]; !u.PendingDue.Equal(t0.Add(40*time.Second)) || u.PendingCause != "/etc/sigsci/agent.conf" {
		t.Errorf("pending = %+v", u)
	}

	st.Publish(event.Restart{Time: t0.Add(41 * time.Second), Unit: "sigsci-agent.service", Result: event.ResultDone, Duration: 1500 * time.Millisecond, ActiveState: "active", SubState: "running"})
	snap = st.Snapshot(context.Background())
	u := snap.Units[0]
	if u.Restarts != 1 || u.LastResult != event.ResultDone || u.ActiveState != "active" || u.LastRestartDuration != 1.5 {
		t.Errorf("unit after restart = %+v", u)
	}
	if !u.PendingDue.IsZero() || u.PendingCause != "" {
		t.Errorf("the restart must clear the pending one: %+v", u)
	}
	if ok, reasons := Healthy(snap); !ok {
		t.Errorf("want healthy, got %v", reasons)
	}
}

func TestStateRenderErrorKeepsLastChangeAndClearsOnSuccess(t *testing.T) {
	c := clocktest.New(t0)
	st := newTestState(c)
	dest := "/etc/sigsci/agent.conf"
	st.Publish(event.Render{Time: t0, Template: dest, Changed: true})
	st.Publish(event.Render{Time: t0.Add(time.Minute), Template: dest, Err: "missing key secretKey"})
	tpl := st.Snapshot(context.Background()).Templates[0]
	if tpl.LastError != "missing key secretKey" || !tpl.LastChange.Equal(t0) || tpl.Errors != 1 {
		t.Errorf("after a failed render: %+v", tpl)
	}
	st.Publish(event.Render{Time: t0.Add(2 * time.Minute), Template: dest})
	if tpl := st.Snapshot(context.Background()).Templates[0]; tpl.LastError != "" || tpl.Renders != 3 {
		t.Errorf("a successful render must clear the error: %+v", tpl)
	}
}

func TestStateAuth(t *testing.T) {
	c := clocktest.New(t0)
	st := newTestState(c)
	st.Publish(event.Auth{Time: t0, Method: "approle", OK: true, TokenExpiry: t0.Add(time.Hour)})

	st.Publish(event.Auth{Time: t0.Add(time.Minute), Method: "approle", Renewal: true, Err: "renew: permission denied"})
	a := st.Snapshot(context.Background()).Auth
	if !a.Authenticated || a.LastError != "renew: permission denied" {
		t.Errorf("a failed renewal leaves the token usable until it expires: %+v", a)
	}

	c.Set(t0.Add(time.Hour))
	if a := st.Snapshot(context.Background()).Auth; a.Authenticated {
		t.Errorf("an expired token is not authenticated: %+v", a)
	}

	st.Publish(event.Auth{Time: t0.Add(time.Hour), Method: "approle", Err: "login: invalid secret id"})
	if a := st.Snapshot(context.Background()).Auth; a.Authenticated || !a.TokenExpiry.IsZero() || a.LastError != "login: invalid secret id" {
		t.Errorf("after a failed login: %+v", a)
	}
}

func TestStateLiveViews(t *testing.T) {
	c := clocktest.New(t0)
	st := NewState(Options{
		AuthMethod: "cert",
		Templates:  []TemplateRef{{Destination: "/a", Unit: "a.service"}, {Destination: "/b", Unit: "b.service"}},
		AuthState: func() Auth {
			return Auth{Method: "cert", Authenticated: true, LastError: "earlier: token " + canary}
		},
		UnitState: func(ctx context.Context, unit string) (string, string, error) {
			if _, ok := ctx.Deadline(); !ok {
				t.Error("unit state must be read with a deadline")
			}
			if unit == "b.service" {
				return "", "", errors.New("dbus: connection closed")
			}
			return "failed", "failed", nil
		},
		Now: c.Now,
	})
	st.Publish(event.Restart{Time: t0, Unit: "a.service", Result: event.ResultDone, ActiveState: "active", SubState: "running"})
	snap := st.Snapshot(context.Background())
	if !snap.Auth.Authenticated || snap.Auth.Method != "cert" {
		t.Errorf("auth must come from AuthState: %+v", snap.Auth)
	}
	if strings.Contains(snap.Auth.LastError, canary) {
		t.Errorf("live auth error not scrubbed: %q", snap.Auth.LastError)
	}
	if a := snap.Units[0]; a.ActiveState != "failed" || a.SubState != "failed" {
		t.Errorf("live unit state must win over the last event: %+v", a)
	}
	if b := snap.Units[1]; b.StateError != "dbus: connection closed" {
		t.Errorf("unit b = %+v", b)
	}
}

func TestStateReconfigureKeepsHistoryOfKeptTemplates(t *testing.T) {
	c := clocktest.New(t0)
	st := newTestState(c)
	st.Publish(event.Render{Time: t0, Template: "/etc/sigsci/agent.conf", Changed: true})
	st.Publish(event.Pending{Time: t0, Unit: "sigsci-agent.service", Due: t0.Add(time.Minute)})
	st.Reconfigure(Options{
		VaultAddress: "https://vault2.example:8200",
		AuthMethod:   "approle",
		Templates:    []TemplateRef{{Destination: "/etc/sigsci/agent.conf", Unit: "other.service"}},
		Now:          c.Now,
	})
	snap := st.Snapshot(context.Background())
	if len(snap.Templates) != 1 || snap.Templates[0].Renders != 1 || snap.Templates[0].Unit != "other.service" {
		t.Errorf("templates = %+v", snap.Templates)
	}
	if len(snap.Units) != 1 || snap.Units[0].Name != "other.service" {
		t.Errorf("units = %+v", snap.Units)
	}
	if snap.Vault.Address != "https://vault2.example:8200" || !snap.StartedAt.Equal(t0) {
		t.Errorf("snapshot = %+v", snap)
	}
}

func TestStateKeepsWhatAUnitRunsOn(t *testing.T) {
	st := newTestState(clocktest.New(t0))
	st.Publish(event.Running{Time: t0, Unit: "sigsci-agent.service", Files: []event.RunningFile{
		{Destination: "/etc/sigsci/agent.conf", Digest: "abc", Since: t0.Add(-time.Hour)},
	}})
	snap := st.Snapshot(context.Background())
	want := []RunningFile{{Destination: "/etc/sigsci/agent.conf", Digest: "abc", Since: t0.Add(-time.Hour)}}
	if len(snap.Units) != 1 || !slices.Equal(snap.Units[0].RunningOn, want) {
		t.Fatalf("units = %+v, want running on %+v", snap.Units, want)
	}
	// A later check replaces the earlier one: the unit is not running now.
	st.Publish(event.Running{Time: t0, Unit: "sigsci-agent.service"})
	if got := st.Snapshot(context.Background()).Units[0].RunningOn; len(got) != 0 {
		t.Errorf("after a check that found the unit stopped: %+v", got)
	}
}

// A restart replaces the process whose content status showed: until the
// check after it says what the new process runs on, status shows nothing
// rather than the old process's digest beside the new result. A rejected
// change, which restarts nothing, keeps what was shown.
func TestARestartForgetsWhatTheOldProcessRanOn(t *testing.T) {
	st := newTestState(clocktest.New(t0))
	const unit = "sigsci-agent.service"
	running := func(digest string) event.Running {
		return event.Running{Time: t0, Unit: unit, Files: []event.RunningFile{{Destination: "/etc/sigsci/agent.conf", Digest: digest, Since: t0}}}
	}
	runningOn := func() []RunningFile { return st.Snapshot(context.Background()).Units[0].RunningOn }

	st.Publish(running("old"))
	st.Publish(event.Restart{Time: t0, Unit: unit, Result: event.ResultRejected})
	if got := runningOn(); len(got) != 1 || got[0].Digest != "old" {
		t.Fatalf("after a rejected change, which restarts nothing, status shows running on %+v, want the old digest", got)
	}
	for _, result := range []string{event.ResultDone, event.ResultRolledBack, event.ResultJobTimeout, event.ResultNotRunning, event.ResultError, "canceled"} {
		st.Publish(running("old"))
		st.Publish(event.Restart{Time: t0, Unit: unit, Result: result})
		if got := runningOn(); len(got) != 0 {
			t.Fatalf("after a %s result status still shows the old process's content %+v", result, got)
		}
	}
	st.Publish(running("new"))
	if got := runningOn(); len(got) != 1 || got[0].Digest != "new" {
		t.Fatalf("the check after the restart shows %+v, want the new digest", got)
	}
}

func TestStateNeverShowsATokenFromAnErrorText(t *testing.T) {
	c := clocktest.New(t0)
	st := newTestState(c)
	leak := "request failed with X-Vault-Token " + canary
	st.Publish(event.Auth{Time: t0, Method: "approle", Err: leak})
	st.Publish(event.VaultRequest{Time: t0, Err: leak})
	st.Publish(event.Render{Time: t0, Template: "/etc/sigsci/agent.conf", Err: leak})
	st.Publish(event.Restart{Time: t0, Unit: "sigsci-agent.service", Result: event.ResultFailed, Err: leak})
	st.Publish(event.Pending{Time: t0, Unit: "sigsci-agent.service", Cause: leak})
	st.Publish(event.Auth{Time: t0, Method: "approle", Err: "legacy s.abcdefghijklmnopqrstuvwx, batch hvb.AAAAAAAAAAAAAAAAAAAAAAAAAAAA and short hvs.Q3x9Lk2Pz7w"})
	snap := st.Snapshot(context.Background())

	raw, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := WriteTable(&table, snap); err != nil {
		t.Fatal(err)
	}
	_, reasons := Healthy(snap)
	for name, out := range map[string]string{"json": string(raw), "table": table.String(), "reasons": strings.Join(reasons, "\n")} {
		for _, secret := range []string{canary, "s.abcdefghijklmnopqrstuvwx", "hvb.AAAA", "hvs.Q3x9"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s output shows a token %q:\n%s", name, secret, out)
			}
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s output lost the error text around the token:\n%s", name, out)
		}
	}
}

func TestStateIsSafeForConcurrentUse(t *testing.T) {
	c := clocktest.New(t0)
	st := newTestState(c)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := range 200 {
				st.Publish(event.Render{Time: t0.Add(time.Duration(j) * time.Second), Template: "/etc/sigsci/agent.conf", Changed: i%2 == 0})
				st.Publish(event.VaultRequest{Time: t0, StatusCode: 200})
			}
		}()
		go func() {
			defer wg.Done()
			for range 50 {
				st.Snapshot(context.Background())
			}
		}()
	}
	wg.Wait()
	snap := st.Snapshot(context.Background())
	if snap.Templates[0].Renders != 800 || snap.Vault.Requests != 800 {
		t.Errorf("lost events: renders %d, requests %d", snap.Templates[0].Renders, snap.Vault.Requests)
	}
}

func TestStateVaultFailingSinceFirstFailureUntilASuccess(t *testing.T) {
	c := clocktest.New(t0)
	s := NewState(Options{VaultAddress: "https://vault.example:8200", VaultGrace: time.Minute, Now: c.Now})
	s.Publish(event.VaultRequest{Time: t0, StatusCode: 200})
	s.Publish(event.VaultRequest{Time: t0.Add(10 * time.Second), Err: "connection refused"})
	s.Publish(event.VaultRequest{Time: t0.Add(20 * time.Second), StatusCode: 502})
	snap := s.Snapshot(context.Background())
	if !snap.Vault.FailingSince.Equal(t0.Add(10*time.Second)) || time.Duration(snap.Vault.Grace) != time.Minute {
		t.Fatalf("vault = %+v, want failing since the first failure, grace 1m", snap.Vault)
	}
	c.Set(t0.Add(2 * time.Minute))
	if ok, reasons := Healthy(s.Snapshot(context.Background())); ok {
		t.Fatalf("healthy after failing for almost 2m with a 1m grace: %v", reasons)
	}
	s.Publish(event.VaultRequest{Time: t0.Add(2 * time.Minute), StatusCode: 200})
	snap = s.Snapshot(context.Background())
	if !snap.Vault.FailingSince.IsZero() {
		t.Fatalf("failing since %v after a good request", snap.Vault.FailingSince)
	}
	data, err := json.Marshal(snap.Vault)
	if err != nil || !strings.Contains(string(data), `"grace_seconds":60`) {
		t.Fatalf("vault JSON %s, %v: want grace_seconds 60", data, err)
	}
}

func TestStateKeepsTheLastReportPerSite(t *testing.T) {
	st := newTestState(clocktest.New(t0))
	report := event.Report{Time: t0, Mount: "sigsci", Role: "vault-user", Site: "www", Host: "web-1", AccessKey: "ak-1", Unit: "sigsci-agent.service", OK: true}
	st.Publish(report)
	failed := report
	failed.Time, failed.OK, failed.Err = t0.Add(10*time.Minute), false, "vault answered 403: permission denied "+canary
	st.Publish(failed)
	st.Publish(event.Report{Time: t0, Mount: "sigsci", Role: "vault-user", Site: "api", Host: "web-1", AccessKey: "ak-api", OK: true})

	snap := st.Snapshot(context.Background())
	if len(snap.Reports) != 2 {
		t.Fatalf("reports = %+v, want one per site", snap.Reports)
	}
	got := snap.Reports[0]
	if got.Site != "www" || got.AccessKey != "ak-1" || !got.LastAttempt.Equal(failed.Time) || !got.LastSuccess.Equal(t0) ||
		!strings.HasPrefix(got.LastError, "vault answered 403: permission denied") || strings.Contains(got.LastError, canary) {
		t.Fatalf("www's report = %+v", got)
	}
	if ok, reasons := Healthy(snap); strings.Contains(strings.Join(reasons, "\n"), "report") {
		t.Errorf("a failing report made hostd unhealthy (%v): %v", ok, reasons)
	}
}

package plugin

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestScheduleRoleFields(t *testing.T) {
	e := newTestEnv(t) // Tuesday 2026-12-01 10:00 UTC
	e.writeRole("vault-user", "acme")
	schedule := func() map[string]interface{} {
		data := e.ok(logical.ReadOperation, "role/vault-user", nil).Data
		out := map[string]interface{}{}
		for _, k := range []string{"rotation_schedule", "rotation_window", "disable_automated_rotation", "auto_retire", "next_rotation"} {
			if v, ok := data[k]; ok {
				out[k] = v
			}
		}
		return out
	}
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"rotation_schedule": " 0 3 * * 1 "})
	want := map[string]interface{}{
		"rotation_schedule":          "0 3 * * 1",
		"rotation_window":            3600,
		"disable_automated_rotation": false,
		"auto_retire":                true, // the default with a schedule
		"next_rotation":              "2026-12-07T03:00:00Z",
	}
	if got := schedule(); !reflect.DeepEqual(got, want) {
		t.Fatalf("role read %v, want %v", got, want)
	}

	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"rotation_window": "2h", "auto_retire": false})
	want["rotation_window"], want["auto_retire"] = 7200, false
	if got := schedule(); !reflect.DeepEqual(got, want) {
		t.Fatalf("role read %v, want %v", got, want)
	}

	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"disable_automated_rotation": true})
	want["disable_automated_rotation"] = true
	delete(want, "next_rotation")
	if got := schedule(); !reflect.DeepEqual(got, want) {
		t.Fatalf("paused: role read %v, want %v", got, want)
	}

	before := e.storageSnapshot()
	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"rotation_schedule": "0 3 * *"}, `rotation_schedule "0 3 * *" is not a 5-field cron spec`},
		{map[string]interface{}{"rotation_schedule": "0 0 3 * * 1"}, "is not a 5-field cron spec"},
		{map[string]interface{}{"rotation_schedule": "61 * * * *"}, "is not a 5-field cron spec"},
		{map[string]interface{}{"rotation_schedule": "@every 1h"}, "is not a 5-field cron spec"},
		{map[string]interface{}{"rotation_schedule": "TZ=Europe/Berlin 0 3 * * 1"}, "rotation_schedule is always UTC: leave out TZ="},
		{map[string]interface{}{"rotation_schedule": "TZ=UTC"}, "rotation_schedule is always UTC"},
		{map[string]interface{}{"rotation_schedule": "0 0 30 2 *"}, `rotation_schedule "0 0 30 2 *" never fires`},
		{map[string]interface{}{"rotation_window": "4m"}, "rotation_window must be between 5m0s and 168h0m0s, got 4m0s"},
		{map[string]interface{}{"rotation_window": "169h"}, "rotation_window must be between"},
		{map[string]interface{}{"rotation_schedule": "", "rotation_window": "1h"}, "rotation_window needs a rotation_schedule"},
	} {
		e.fails(logical.UpdateOperation, "role/vault-user", tc.data, http.StatusBadRequest, tc.want)
	}
	e.assertStorageUnchanged(before)

	// Removing the schedule removes its window; an explicit auto_retire stays.
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"rotation_schedule": ""})
	want = map[string]interface{}{"rotation_schedule": "", "rotation_window": 0, "disable_automated_rotation": true, "auto_retire": false}
	if got := schedule(); !reflect.DeepEqual(got, want) {
		t.Fatalf("without a schedule: role read %v, want %v", got, want)
	}
	// Other role fields are untouched by schedule writes.
	if data := e.ok(logical.ReadOperation, "role/vault-user", nil).Data; data["corp"] != "acme" || data["token_configured"] != true {
		t.Fatalf("role read %v", data)
	}
}

// Site i of n starts at i/n of the first half of the window.
func TestSchedulePlanSpreadsSitesOverTheFirstHalfOfTheWindow(t *testing.T) {
	at3 := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	s := roleSchedule{RotationSchedule: "0 3 * * *", ScheduledSince: at3.Add(-24 * time.Hour)}
	never := time.Time{}
	now := at3.Add(10 * time.Minute)
	p := s.plan(now)
	for i, wantStart := range []time.Duration{0, 7*time.Minute + 30*time.Second, 15 * time.Minute, 22*time.Minute + 30*time.Second} {
		got := p.site(i, 4, never, now)
		want := sitePlan{due: wantStart <= 10*time.Minute, next: at3.Add(wantStart)}
		if got != want {
			t.Errorf("site %d of 4 at 03:10: %+v, want %+v", i, got, want)
		}
	}
	// Rotated since 03:00: the next one is tomorrow, at the same offset.
	if got := p.site(1, 4, at3.Add(8*time.Minute), now); got.due || !got.next.Equal(at3.Add(24*time.Hour+7*time.Minute+30*time.Second)) {
		t.Errorf("rotated site: %+v", got)
	}
	// The window has closed: wait for the next scheduled time.
	late := at3.Add(time.Hour)
	if got := s.plan(late).site(0, 1, never, late); got.due || !got.next.Equal(at3.Add(24*time.Hour)) {
		t.Errorf("after the window: %+v", got)
	}
	// A schedule set after its scheduled time does not fire for it.
	s.ScheduledSince = at3.Add(5 * time.Minute)
	if got := s.plan(now).site(0, 1, never, now); got.due {
		t.Errorf("a schedule set at 03:05 rotated for 03:00: %+v", got)
	}
	// Paused: nothing planned.
	s.DisableAutomatedRotation = true
	if got := s.plan(now).site(0, 1, never, now); got != (sitePlan{}) {
		t.Errorf("paused: %+v", got)
	}
}

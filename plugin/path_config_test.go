package plugin

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestConfigDefaultUpdateAndBounds(t *testing.T) {
	e := newTestEnv(t)
	if got := e.ok(logical.ReadOperation, "config", nil).Data["refresh_interval"]; got != 60 {
		t.Fatalf("default refresh_interval = %v, want 60", got)
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": "2m"})
	if got := e.ok(logical.ReadOperation, "config", nil).Data["refresh_interval"]; got != 120 {
		t.Fatalf("refresh_interval = %v, want 120", got)
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": 5})

	before := e.storageSnapshot()
	for _, bad := range []interface{}{"4s", 0, "25h"} {
		e.fails(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": bad},
			http.StatusBadRequest, "refresh_interval must be between 5s and 24h0m0s")
	}
	for _, bad := range []interface{}{"soon", -10} {
		resp, err := e.do(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": bad})
		if status, _ := statusOf(resp, err); status != http.StatusBadRequest {
			t.Fatalf("refresh_interval %v: status %d", bad, status)
		}
	}
	e.assertStorageUnchanged(before)
	if got := e.ok(logical.ReadOperation, "config", nil).Data["refresh_interval"]; got != 5 {
		t.Fatalf("refused writes changed refresh_interval to %v", got)
	}
}

func TestConfigRefreshHintsAreNeverZero(t *testing.T) {
	for _, interval := range []int{5, 9, 10, 60, 86400} {
		cfg := &mountConfig{RefreshInterval: secondsToDuration(interval)}
		for range 200 {
			period, ttl := refreshHints(cfg)
			if period != interval || ttl < 1 || ttl > period || ttl < period-period/10 {
				t.Fatalf("interval %ds: rotation_period=%d ttl=%d", interval, period, ttl)
			}
		}
	}
}

func TestConfigFleetFields(t *testing.T) {
	e := newTestEnv(t)
	read := func() map[string]interface{} { return e.ok(logical.ReadOperation, "config", nil).Data }
	want := map[string]interface{}{
		"refresh_interval":     60,
		"fleet_stale_after":    1800,
		"retire_min_overlap":   120, // 2 x refresh_interval
		"fleet_forget_after":   2592000,
		"pending_max_age":      86400,
		"copy_max_concurrency": 16,
	}
	if got := read(); !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults %v, want %v", got, want)
	}

	// A write changes only the fields it names.
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"fleet_stale_after": "10m", "fleet_forget_after": "48h"})
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": "30s"})
	want = map[string]interface{}{"refresh_interval": 30, "fleet_stale_after": 600, "retire_min_overlap": 60, "fleet_forget_after": 172800, "pending_max_age": 86400,
		"copy_max_concurrency": 16}
	if got := read(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after partial writes %v, want %v", got, want)
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"retire_min_overlap": "1h"})
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": "5m"})
	if got := read()["retire_min_overlap"]; got != 3600 {
		t.Fatalf("a set retire_min_overlap follows refresh_interval: %v", got)
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"retire_min_overlap": 0})
	if got := read()["retire_min_overlap"]; got != 600 {
		t.Fatalf("retire_min_overlap=0 is not the default again: %v", got)
	}

	before := e.storageSnapshot()
	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"fleet_stale_after": "30s"}, "fleet_stale_after must be at least 1m0s, got 30s"},
		{map[string]interface{}{"retire_min_overlap": "721h"}, "retire_min_overlap must be between 0 (the default, 2 x refresh_interval) and 720h0m0s"},
		{map[string]interface{}{"fleet_forget_after": "8761h"}, "fleet_forget_after must be at most 8760h0m0s"},
		{map[string]interface{}{"fleet_forget_after": "10m"}, "fleet_forget_after (10m0s) must be longer than fleet_stale_after (10m0s)"},
		{map[string]interface{}{"fleet_stale_after": "49h"}, "fleet_forget_after (48h0m0s) must be longer than fleet_stale_after (49h0m0s)"},
		// One bad field refuses the whole write.
		{map[string]interface{}{"refresh_interval": "1m", "fleet_stale_after": "1s"}, "fleet_stale_after must be at least"},
	} {
		e.fails(logical.UpdateOperation, "config", tc.data, http.StatusBadRequest, tc.want)
	}
	e.assertStorageUnchanged(before)
}

func TestConfigCopyMaxConcurrency(t *testing.T) {
	e := newTestEnv(t)
	read := func() interface{} { return e.ok(logical.ReadOperation, "config", nil).Data["copy_max_concurrency"] }
	if got := read(); got != 16 {
		t.Fatalf("default copy_max_concurrency = %v, want 16", got)
	}
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"copy_max_concurrency": 4})
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": "2m"})
	if got := read(); got != 4 {
		t.Fatalf("copy_max_concurrency = %v after writes, want 4", got)
	}
	before := e.storageSnapshot()
	for _, bad := range []interface{}{0, -1, 65} {
		e.fails(logical.UpdateOperation, "config", map[string]interface{}{"copy_max_concurrency": bad},
			http.StatusBadRequest, "copy_max_concurrency must be between 1 and 64")
	}
	resp, err := e.do(logical.UpdateOperation, "config", map[string]interface{}{"copy_max_concurrency": "many"})
	if status, _ := statusOf(resp, err); status != http.StatusBadRequest {
		t.Fatalf("copy_max_concurrency=many: status %d", status)
	}
	e.assertStorageUnchanged(before)
}

func TestConfigPendingMaxAge(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"pending_max_age": "2h"})
	if got := e.ok(logical.ReadOperation, "config", nil).Data["pending_max_age"]; got != 7200 {
		t.Fatalf("pending_max_age = %v, want 7200", got)
	}
	before := e.storageSnapshot()
	for _, bad := range []interface{}{"5m", "8761h"} {
		e.fails(logical.UpdateOperation, "config", map[string]interface{}{"pending_max_age": bad},
			http.StatusBadRequest, "pending_max_age must be between 10m0s and 8760h0m0s")
	}
	e.assertStorageUnchanged(before)
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"pending_max_age": 0})
	if got := e.ok(logical.ReadOperation, "config", nil).Data["pending_max_age"]; got != 86400 {
		t.Fatalf("pending_max_age=0 is not the default again: %v", got)
	}
}

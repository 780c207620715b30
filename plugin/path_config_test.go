package plugin

import (
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestConfig_DefaultUpdateAndBounds(t *testing.T) {
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

func TestConfig_RefreshHintsAreNeverZero(t *testing.T) {
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

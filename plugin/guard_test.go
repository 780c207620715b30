package plugin

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// rotated is a mount whose site www was just rotated: old is the demoted
// access key, primary the new one.
func rotated(t *testing.T) (e *testEnv, old, primary string) {
	t.Helper()
	e, old = fleetEnv(t)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	return e, old, e.stored("vault-user", "www").AccessKey
}

func TestGuardRefusesWhileAFreshHostRunsAnOldKeyUnlessForced(t *testing.T) {
	e, old, primary := rotated(t)
	e.report("vault-user", "www", "web-1", primary)
	e.report("vault-user", "www", "web-2", old)
	e.clock.Add(5 * time.Minute)
	e.report("vault-user", "www", "web-3", old)

	before, apiBefore := e.storageSnapshot(), e.sim.KeySets("acme", "www")
	msg := e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict,
		`retiring the non-primary key sets of site "www" is refused: 2 host(s) still run a non-primary key: web-2 (`+old+`), web-3 (`+old+`)`)
	for _, want := range []string{
		"allowed once they report the primary key " + primary,
		"or at 2026-12-01T10:35:00Z at the latest", // web-3 reported at 10:05, stale after 30m
		"force=true overrides: vault delete sigsci/rotate/sites/www force=true",
	} {
		if !strings.Contains(msg, want) {
			t.Fatalf("the refusal lacks %q:\n%s", want, msg)
		}
	}
	e.assertStorageUnchanged(before)
	if !reflect.DeepEqual(e.sim.KeySets("acme", "www"), apiBefore) {
		t.Fatal("a refused retirement changed the API")
	}

	resp := e.ok(logical.DeleteOperation, "rotate/sites/www", map[string]interface{}{"force": true})
	if got := resp.Data["retired"]; !reflect.DeepEqual(got, []string{old}) {
		t.Fatalf("forced retirement retired %v", got)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0],
		"retired with force=true although 2 host(s) still run a non-primary key: web-2 ("+old+"), web-3 ("+old+")") {
		t.Fatalf("forced retirement warnings: %v", resp.Warnings)
	}
	if !strings.Contains(e.logs.String(), "retiring with force=true although the fleet guard refuses") {
		t.Fatalf("a forced retirement is not logged:\n%s", e.logs.String())
	}
	// The hosts on the dead key are now shown as such.
	if got := e.fleetSummary("vault-user", "www")["on_retired_keys"]; !reflect.DeepEqual(got, map[string]string{"web-2": old, "web-3": old}) {
		t.Fatalf("on_retired_keys = %v", got)
	}
}

func TestGuardNamesAtMostTenHosts(t *testing.T) {
	e, old, _ := rotated(t)
	for i := range 12 {
		e.report("vault-user", "www", fmt.Sprintf("web-%02d", i), old)
	}
	msg := e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict, "12 host(s) still run a non-primary key")
	if !strings.Contains(msg, "web-09 ("+old+") and 2 more") || strings.Contains(msg, "web-10") {
		t.Fatalf("the refusal does not name exactly ten hosts:\n%s", msg)
	}
}

func TestGuardEveryFreshHostOnThePrimaryAllowsAtOnce(t *testing.T) {
	e, old, primary := rotated(t)
	e.report("vault-user", "www", "web-1", primary)
	e.report("vault-user", "www", "web-2", primary)
	if got := e.ok(logical.DeleteOperation, "rotate/sites/www", nil).Data["retired"]; !reflect.DeepEqual(got, []string{old}) {
		t.Fatalf("retired %v", got)
	}
}

func TestGuardStaleHostNoLongerHoldsBack(t *testing.T) {
	e, old, primary := rotated(t)
	e.report("vault-user", "www", "web-1", primary)
	e.report("vault-user", "www", "web-down", old)
	e.clock.Add(29 * time.Minute)
	e.report("vault-user", "www", "web-1", primary)
	e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict, "web-down ("+old+")")
	e.clock.Add(time.Minute)
	if got := e.fleetSummary("vault-user", "www")["stale"]; !reflect.DeepEqual(got, []string{"web-down"}) {
		t.Fatalf("stale = %v", got)
	}
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
}

// A fleet that does not report (stock Vault Agent): the old set stays for
// retire_min_overlap after it was demoted.
func TestGuardWithoutReportsWaitsForTheOverlap(t *testing.T) {
	e, old, primary := rotated(t) // demoted at 10:00, overlap 2 x 60s
	e.clock.Add(119 * time.Second)
	msg := e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict,
		`no host reports for site "www", and key set `+old+` stopped being primary at 2026-12-01T10:00:00Z, less than retire_min_overlap (2m0s) ago`)
	if !strings.Contains(msg, "allowed at 2026-12-01T10:02:00Z, or as soon as hosts report the primary key "+primary) {
		t.Fatalf("the refusal does not say when:\n%s", msg)
	}
	e.clock.Add(time.Second)
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)

	// The overlap follows refresh_interval unless set; the newest demotion counts.
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": "10m"})
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.clock.Add(10 * time.Minute)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.clock.Add(19 * time.Minute)
	e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict, "less than retire_min_overlap (20m0s) ago")
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"retire_min_overlap": "15m"})
	if got := e.ok(logical.DeleteOperation, "rotate/sites/www", nil).Data["retired"].([]string); len(got) != 2 {
		t.Fatalf("retired %v, want both demoted sets", got)
	}
}

// Sets stored before demoted_at was recorded count as demoted when the
// current primary was stored.
func TestGuardSetsWithoutDemotedAtCountFromThePrimary(t *testing.T) {
	e, _, _ := rotated(t)
	k := e.stored("vault-user", "www")
	k.NonPrimary[0].DemotedAt = time.Time{}
	k.Created = e.clock.Now().Add(-time.Minute)
	if err := e.b.putKeys(context.Background(), e.storage, k); err != nil {
		t.Fatal(err)
	}
	e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict, "stopped being primary at 2026-12-01T09:59:00Z")
	e.clock.Add(time.Minute)
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
}

func TestGuardRecordsWhenEachSetWasDemoted(t *testing.T) {
	e, first, _ := rotated(t)
	e.clock.Add(time.Hour)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	k := e.stored("vault-user", "www")
	got := map[string]string{}
	for _, r := range k.NonPrimary {
		got[r.AccessKey] = r.DemotedAt.Format(time.RFC3339)
	}
	second := k.NonPrimary[len(k.NonPrimary)-1].AccessKey
	want := map[string]string{first: "2026-12-01T10:00:00Z", second: "2026-12-01T11:00:00Z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("demoted_at %v, want %v", got, want)
	}
	// A copy that finds a new primary made outside Vault demotes too.
	if _, err := e.acmeAPI().CreateKeySet(context.Background(), "acme", "www"); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(time.Hour)
	e.copySite("vault-user", "www")
	k = e.stored("vault-user", "www")
	last := k.NonPrimary[len(k.NonPrimary)-1]
	if last.DemotedAt.Format(time.RFC3339) != "2026-12-01T12:00:00Z" {
		t.Fatalf("copy demoted %s at %v", last.AccessKey, last.DemotedAt)
	}
}

// Both forms of the path apply the guard; the hint names the form used.
func TestGuardAppliesToTheRoleScopedPath(t *testing.T) {
	e, old, _ := rotated(t)
	e.report("vault-user", "www", "web-1", old)
	e.fails(logical.DeleteOperation, "rotate/vault-user/sites/www", nil, http.StatusConflict,
		"force=true overrides: vault delete sigsci/rotate/vault-user/sites/www force=true")
	resp := e.ok(logical.DeleteOperation, "rotate/vault-user/sites/www", map[string]interface{}{"force": true})
	if !slices.Equal(resp.Data["retired"].([]string), []string{old}) || len(resp.Warnings) != 1 {
		t.Fatalf("forced retirement: %v %v", resp.Data, resp.Warnings)
	}
}

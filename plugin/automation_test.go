package plugin

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// day2 is 2026-12-02 (the test clock starts on 2026-12-01 10:00 UTC) at
// the given time of day.
func day2(hour, minute, second int) time.Time {
	return time.Date(2026, 12, 2, hour, minute, second, 0, time.UTC)
}

// scheduled is a mount whose role vault-user holds the given sites and
// rotates them daily at 03:00 with the given extra role fields.
func scheduled(t *testing.T, sites []string, fields map[string]interface{}) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	for _, site := range sites {
		e.copySite("vault-user", site)
	}
	data := map[string]interface{}{"rotation_schedule": "0 3 * * *"}
	for k, v := range fields {
		data[k] = v
	}
	e.ok(logical.UpdateOperation, "role/vault-user", data)
	return e
}

// tickAt sets the clock and ticks.
func (e *testEnv) tickAt(t time.Time) {
	e.t.Helper()
	e.clock.Set(t)
	e.tick()
}

// setCount is the number of key sets the API holds for each acme site.
func (e *testEnv) setCount(sites ...string) []int {
	out := make([]int, len(sites))
	for i, site := range sites {
		out[i] = len(e.sim.KeySets("acme", site))
	}
	return out
}

// assertAutoRetiredAt ticks at heldAt and checks that site www still has
// its old key set, then ticks at dueAt and checks that auto_retire retired
// it; held and due say why, in the failures.
func (e *testEnv) assertAutoRetiredAt(heldAt, dueAt time.Time, held, due string) {
	e.t.Helper()
	e.tickAt(heldAt)
	if got := e.setCount("www"); got[0] != 2 {
		e.t.Fatal("retired " + held)
	}
	e.tickAt(dueAt)
	if got := e.setCount("www"); got[0] != 1 {
		e.t.Fatal("not retired " + due)
	}
}

func TestSchedulerRotatesTheRoleSitesSpreadOverTheWindow(t *testing.T) {
	sites := []string{"api", "shop", "www"} // sorted: start at +0, +10m, +20m
	e := scheduled(t, sites, map[string]interface{}{"auto_retire": false})
	walDuringCreate := -1
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, createHook: func(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
			walDuringCreate = e.walCount()
			return c.CreateKeySet(ctx, corp, site)
		}}
	})

	for _, step := range []struct {
		at   time.Time
		sets []int
	}{
		{day2(2, 59, 0), []int{1, 1, 1}},
		{day2(3, 0, 0), []int{2, 1, 1}},
		{day2(3, 9, 59), []int{2, 1, 1}},
		{day2(3, 10, 0), []int{2, 2, 1}},
		{day2(3, 20, 30), []int{2, 2, 2}},
		{day2(3, 40, 0), []int{2, 2, 2}}, // each site once per scheduled time
	} {
		e.tickAt(step.at)
		if got := e.setCount(sites...); !reflect.DeepEqual(got, step.sets) {
			t.Fatalf("at %s: key sets per site %v, want %v", step.at.Format(time.TimeOnly), got, step.sets)
		}
	}
	if walDuringCreate != 1 || e.walCount() != 0 {
		t.Fatalf("WAL entries during a scheduled create: %d, after: %d; want 1 and 0", walDuringCreate, e.walCount())
	}
	for _, site := range sites {
		k := e.stored("vault-user", site)
		if _, primary := e.simSets("acme", site); k.AccessKey != primary || k.LastVaultRotation.Before(day2(3, 0, 0)) {
			t.Fatalf("site %s: stored %s, API primary %s, last rotation %v", site, k.AccessKey, primary, k.LastVaultRotation)
		}
	}
	if n := strings.Count(e.logs.String(), "[WARN]"); n != 0 {
		t.Fatalf("warnings on a clean scheduled rotation:\n%s", e.logs.String())
	}
	if n := strings.Count(e.logs.String(), "[INFO]  scheduled rotation: role=vault-user"); n != 3 {
		t.Fatalf("%d scheduled rotations logged, want 3:\n%s", n, e.logs.String())
	}
}

func TestSchedulerNeverRotatesASiteWhoseOldSetWaits(t *testing.T) {
	e := scheduled(t, []string{"www"}, map[string]interface{}{"auto_retire": false})
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil) // Dec 1, 10:00: an old set waits
	for m := range 10 {
		e.tickAt(day2(3, m, 0))
	}
	if got := e.setCount("www"); got[0] != 2 {
		t.Fatalf("a site with a non-primary set waiting was rotated: %d sets", got[0])
	}
	if n := strings.Count(e.logs.String(), "scheduled rotation skipped"); n != 1 {
		t.Fatalf("the skip was logged %d times in one window, want once:\n%s", n, e.logs.String())
	}
	status := e.ok(logical.ReadOperation, "rotate/sites/www", nil).Data
	if why, _ := status["rotation_waiting"].(string); !strings.Contains(why, "waits until the non-primary key sets") {
		t.Fatalf("rotate read does not say why the rotation waits: %v", status)
	}

	e.ok(logical.DeleteOperation, "rotate/sites/www", nil) // the operator retires
	e.tickAt(day2(3, 10, 0))
	if got := e.setCount("www"); got[0] != 2 || len(e.stored("vault-user", "www").NonPrimary) != 1 {
		t.Fatal("the site was not rotated once its old set was retired, within the window")
	}
}

// A window nobody ticked in (Vault down) is not made up for.
func TestSchedulerAMissedWindowWaitsForTheNextScheduledTime(t *testing.T) {
	e := scheduled(t, []string{"www"}, map[string]interface{}{"auto_retire": false})
	e.tickAt(day2(2, 59, 0))
	e.tickAt(day2(4, 0, 1))
	if got := e.setCount("www"); got[0] != 1 {
		t.Fatal("rotated after the window closed")
	}
	status := e.ok(logical.ReadOperation, "rotate/sites/www", nil).Data
	if status["next_rotation"] != "2026-12-03T03:00:00Z" {
		t.Fatalf("next_rotation = %v", status["next_rotation"])
	}
	e.tickAt(time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC))
	if got := e.setCount("www"); got[0] != 2 {
		t.Fatal("not rotated at the next scheduled time")
	}
}

func TestSchedulerSettingAScheduleDoesNotRotateAtOnce(t *testing.T) {
	e := newStoredSite(t)
	e.clock.Add(30 * time.Second)
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"rotation_schedule": "* * * * *", "auto_retire": false})
	e.clock.Add(10 * time.Second)
	e.tick()
	if got := e.setCount("www"); got[0] != 1 {
		t.Fatal("setting a schedule at 10:00:30 rotated for 10:00")
	}
	e.clock.Add(20 * time.Second)
	e.tick()
	if got := e.setCount("www"); got[0] != 2 {
		t.Fatal("not rotated at 10:01")
	}
}

func TestSchedulerPausedRoleIsNotRotated(t *testing.T) {
	e := scheduled(t, []string{"www"}, map[string]interface{}{"disable_automated_rotation": true})
	e.tickAt(day2(3, 0, 0))
	if got := e.setCount("www"); got[0] != 1 {
		t.Fatal("a paused role was rotated")
	}
	if _, ok := e.ok(logical.ReadOperation, "rotate/sites/www", nil).Data["next_rotation"]; ok {
		t.Fatal("a paused role shows a next rotation")
	}
}

// The automation runs only where writes are safe: not on a performance
// standby or secondary.
func TestSchedulerOnlyOnTheActiveNode(t *testing.T) {
	e := scheduled(t, []string{"www"}, nil)
	sys := e.b.System().(*logical.StaticSystemView)
	for _, state := range []consts.ReplicationState{consts.ReplicationPerformanceStandby, consts.ReplicationPerformanceSecondary, consts.ReplicationDRSecondary} {
		sys.ReplicationStateVal = state
		lists := e.sim.Calls(sigscisim.EndpointListKeySets)
		e.tickAt(day2(3, 0, 0))
		if got := e.setCount("www"); got[0] != 1 || e.sim.Calls(sigscisim.EndpointListKeySets) != lists {
			t.Fatalf("replication state %v: the automation ran", state)
		}
	}
	sys.ReplicationStateVal = consts.ReplicationPerformancePrimary
	e.tickAt(day2(3, 0, 0))
	if got := e.setCount("www"); got[0] != 2 {
		t.Fatal("the active node of the primary did not rotate")
	}
}

// auto_retire retires as soon as the guard allows, never forces, and says
// why it waits: in the site's read and once per window in the log.
func TestSchedulerAutoRetireWaitsForTheFleetAndNeverForces(t *testing.T) {
	e := scheduled(t, []string{"www"}, nil) // auto_retire by default
	old := e.stored("vault-user", "www").AccessKey
	e.clock.Set(day2(2, 50, 0))
	e.report("vault-user", "www", "web-1", old)
	e.tickAt(day2(3, 0, 0))
	primary := e.stored("vault-user", "www").AccessKey
	if primary == old {
		t.Fatal("not rotated at 03:00")
	}

	for m := 1; m <= 59; m++ {
		e.clock.Set(day2(3, m, 0))
		if m%10 == 0 {
			e.report("vault-user", "www", "web-1", old) // heartbeat, still on the old key
		}
		e.tick()
	}
	if got := e.setCount("www"); got[0] != 2 {
		t.Fatal("auto_retire retired while a host runs the old key")
	}
	logs := e.logs.String()
	if n := strings.Count(logs, "auto_retire waits"); n != 1 {
		t.Fatalf("the wait was logged %d times within the window, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs, "web-1 ("+old+")") {
		t.Fatalf("the log does not say which host holds it back:\n%s", logs)
	}
	status := e.ok(logical.ReadOperation, "rotate/sites/www", nil).Data
	if why, _ := status["auto_retire_waiting"].(string); !strings.Contains(why, "1 host(s) still run a non-primary key: web-1 ("+old+")") {
		t.Fatalf("auto_retire_waiting = %v", status["auto_retire_waiting"])
	}
	e.tickAt(day2(4, 1, 0))
	if n := strings.Count(e.logs.String(), "auto_retire waits"); n != 2 {
		t.Fatalf("the wait was logged %d times after a window, want twice", n)
	}

	e.report("vault-user", "www", "web-1", primary)
	e.tickAt(day2(4, 2, 0))
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, []string{primary}) {
		t.Fatalf("after the host reported the new key the API holds %v", all)
	}
	if !strings.Contains(e.logs.String(), "auto_retire retired the non-primary key sets") {
		t.Fatal("the retirement is not logged")
	}
	if _, ok := e.ok(logical.ReadOperation, "rotate/sites/www", nil).Data["auto_retire_waiting"]; ok {
		t.Fatal("auto_retire_waiting shown with nothing to retire")
	}
}

// A host that goes stale stops holding auto_retire back.
func TestSchedulerAutoRetireGoesAheadWhenTheLastHostGoesStale(t *testing.T) {
	e := scheduled(t, []string{"www"}, nil)
	old := e.stored("vault-user", "www").AccessKey
	e.clock.Set(day2(2, 55, 0))
	e.report("vault-user", "www", "web-down", old)
	e.tickAt(day2(3, 0, 0))
	e.assertAutoRetiredAt(day2(3, 24, 59), day2(3, 25, 0), "while web-down was fresh", "once web-down went stale")
}

// Without reports, auto_retire waits for retire_min_overlap.
func TestSchedulerAutoRetireWithoutReportsWaitsForTheOverlap(t *testing.T) {
	e := scheduled(t, []string{"www"}, nil)
	e.tickAt(day2(3, 0, 0))
	e.assertAutoRetiredAt(day2(3, 1, 59), day2(3, 2, 0), "before retire_min_overlap", "after retire_min_overlap")
}

// auto_retire works for manual rotations too, with or without a schedule.
func TestSchedulerAutoRetireWithoutASchedule(t *testing.T) {
	e := newStoredSite(t)
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"auto_retire": true})
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.passOverlap()
	e.tick()
	if got := e.setCount("www"); got[0] != 1 {
		t.Fatal("auto_retire without a schedule did not retire")
	}
}

func TestAutomationCleanStopsARunningPass(t *testing.T) {
	e := scheduled(t, []string{"www"}, nil)
	e.clock.Set(day2(3, 0, 0))
	e.assertCleanStops("the scheduled rotation", func() error {
		_, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RollbackOperation, Storage: e.storage})
		return err
	})
	if e.walCount() != 0 || e.setCount("www")[0] != 1 {
		t.Fatal("a pass stopped before its create left a change behind")
	}
}

// TestSchedulerAPendingRotationCompletedFirstIsTheScheduledOne: a
// rotation interrupted before its scheduled time (a crash, a failover, a
// plugin reload) whose create had landed is completed by the scheduled
// pass, and that completion is the window's rotation: the pass does not
// rotate a second time on top of it, so hosts never skip a key.
func TestSchedulerAPendingRotationCompletedFirstIsTheScheduledOne(t *testing.T) {
	e := scheduled(t, []string{"www"}, map[string]interface{}{"auto_retire": false})
	old := e.stored("vault-user", "www")
	before, _ := e.simSets("acme", "www")
	e.putWAL(walKindRotate, map[string]interface{}{
		"op_id": "op-rotate-1", "role": "vault-user", "corp": "acme", "site": "www",
		"before": before, "previous_primary": old.AccessKey,
	})
	landed := e.createAtAPI("www")

	e.tickAt(day2(3, 0, 0))
	all, primary := e.simSets("acme", "www")
	if len(all) != 2 || primary != landed {
		t.Fatalf("the API holds %v with primary %s; want the old set and the one the interrupted rotation created (%s)", all, primary, landed)
	}
	if k := e.stored("vault-user", "www"); k.AccessKey != landed || !reflect.DeepEqual(k.nonPrimaryAccessKeys(), []string{old.AccessKey}) {
		t.Fatalf("stored: %v", k)
	}
	if strings.Contains(e.logs.String(), "[WARN]") {
		t.Fatalf("a warning for a rotation that was completed:\n%s", e.logs.String())
	}
	e.tickAt(day2(3, 1, 0))
	if n := len(e.sim.KeySets("acme", "www")); n != 2 {
		t.Fatalf("the next tick left %d sets at the API, want 2", n)
	}
}

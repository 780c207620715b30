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

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// The operator's story: copy, rotate while hosts hold the old key, then
// retire the old key once hosts have the new one.
func TestRotateRotateWhileHostsHoldTheOldKeyThenRetire(t *testing.T) {
	e := newStoredSite(t)
	hostKey := e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil)
	oldAccess := str(t, hostKey, "accessKey")
	clock := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	e.clock.Set(clock)

	rot := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	if _, ok := rot.Data["secretKey"]; ok {
		t.Fatal("the rotate answer carries the secret")
	}
	newAccess := str(t, rot, "accessKey")
	all, primary := e.simSets("acme", "www")
	if newAccess == oldAccess || newAccess != primary || len(all) != 2 || !slices.Contains(all, oldAccess) {
		t.Fatalf("after rotate: answer %s, API primary %s, API sets %v (old %s)", newAccess, primary, all, oldAccess)
	}
	if got := rot.Data["non_primary_access_keys"]; !reflect.DeepEqual(got, []string{oldAccess}) {
		t.Fatalf("rotate: non_primary_access_keys = %v", got)
	}
	if str(t, rot, "last_vault_rotation") != "2031-05-06T07:08:09Z" || str(t, rot, "role") != "vault-user" {
		t.Fatalf("rotate metadata: %v", rot.Data)
	}

	read := e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil)
	if str(t, read, "accessKey") != newAccess || str(t, read, "secretKey") == str(t, hostKey, "secretKey") {
		t.Fatal("creds read does not return the new primary")
	}
	e.assertSettled("after rotate", settled{nonPrimary: []string{oldAccess}})

	// A host still on the old key holds the retirement back; once it
	// reports the new one, the old set goes.
	e.report("vault-user", "www", "web-1", oldAccess)
	e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict, "web-1 ("+oldAccess+")")
	e.report("vault-user", "www", "web-1", newAccess)
	ret := e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	if got := ret.Data["retired"]; !reflect.DeepEqual(got, []string{oldAccess}) {
		t.Fatalf("retired = %v", got)
	}
	if str(t, ret, "accessKey") != newAccess {
		t.Fatalf("retire answer accessKey = %v", ret.Data["accessKey"])
	}
	if k := e.assertSettled("after retire", settled{}); k.AccessKey != newAccess {
		t.Fatalf("after retire the primary is %s, want %s", k.AccessKey, newAccess)
	}

	// Nothing left to retire: a no-op, not an error.
	again := e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	if got := again.Data["retired"]; !reflect.DeepEqual(got, []string{}) {
		t.Fatalf("second retire: retired = %v", got)
	}
}

func TestRotateCallsNoMoreThanNeeded(t *testing.T) {
	e := newStoredSite(t)
	e.sim.ResetCalls()
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	// List before and after the create, each with the read of the primary
	// set that decides which listed set is primary (and carries its secret).
	want := map[string]int{
		sigscisim.EndpointListKeySets:  2,
		sigscisim.EndpointPrimaryKeys:  2,
		sigscisim.EndpointCreateKeySet: 1,
	}
	if got := e.sim.CallCounts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("rotation made the API calls %v, want %v", got, want)
	}
}

func TestRotateValidation(t *testing.T) {
	e := newStoredSite(t)
	before := e.storageSnapshot()
	for _, op := range []logical.Operation{logical.UpdateOperation, logical.DeleteOperation} {
		e.fails(op, "rotate/sites/WWW", nil, http.StatusBadRequest, `site name "WWW" is invalid`)
		e.fails(op, "rotate/sites/api", nil, http.StatusNotFound,
			`no role holds keys for site "api"; copy them first with: vault write -f sigsci/creds/<role>/sites/api`)
		e.fails(op, "rotate/sites/www", map[string]interface{}{"role": "nobody"}, http.StatusNotFound, `role "nobody" does not exist`)
		e.writeRole("empty", "acme")
		e.fails(op, "rotate/sites/www", map[string]interface{}{"role": "empty"}, http.StatusNotFound, `role "empty" holds no keys for site "www"`)
		e.ok(logical.DeleteOperation, "role/empty", nil)
	}
	e.assertStorageUnchanged(before)
	if all, _ := e.simSets("acme", "www"); len(all) != 1 {
		t.Fatalf("refused requests changed the API: %v", all)
	}
}

func TestRotateSiteHeldBySeveralRolesNeedsRole(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("acme-user", "acme")
	e.writeRole("other-user", "other")
	e.copySite("acme-user", "www")
	e.copySite("other-user", "www")

	for _, op := range []logical.Operation{logical.UpdateOperation, logical.DeleteOperation} {
		e.fails(op, "rotate/sites/www", nil, http.StatusBadRequest,
			`site "www" is held by several roles (acme-user, other-user); say which with role=<name>`)
	}
	acmeBefore, _ := e.simSets("acme", "www")
	e.ok(logical.UpdateOperation, "rotate/sites/www", map[string]interface{}{"role": "other-user"})
	if all, _ := e.simSets("other", "www"); len(all) != 2 {
		t.Fatalf("corp other has %d sets after its rotation", len(all))
	}
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, acmeBefore) {
		t.Fatal("rotating corp other's site touched corp acme")
	}
	e.passOverlap()
	e.ok(logical.DeleteOperation, "rotate/sites/www", map[string]interface{}{"role": "other-user"})
	if all, _ := e.simSets("other", "www"); len(all) != 1 {
		t.Fatalf("corp other has %d sets after retire", len(all))
	}
}

func TestRetireRefusedWhenTheAPIPrimaryIsNotStored(t *testing.T) {
	e := newStoredSite(t)
	// Someone rotates in the dashboard: the stored key is now non-primary,
	// and hosts still run it. Retiring would kill it.
	if _, err := e.acmeAPI().CreateKeySet(context.Background(), "acme", "www"); err != nil {
		t.Fatal(err)
	}
	before := e.storageSnapshot()
	e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict,
		"is not the one Vault stores")
	e.assertStorageUnchanged(before)
	if all, _ := e.simSets("acme", "www"); len(all) != 2 {
		t.Fatalf("a refused retire deleted key sets: %v", all)
	}
}

func TestRotateRidesOutTransientFaultsWithoutDuplicates(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newTestEnv(t)
			e.writeRole("vault-user", "acme")
			e.copySite("vault-user", "www")
			for range 3 {
				e.sim.FailNext(2, status)
				e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
			}
			all, primary := e.simSets("acme", "www")
			if len(all) != 4 {
				t.Fatalf("3 rotations under faults left %d sets at the API, want 4", len(all))
			}
			k := e.stored("vault-user", "www")
			if k.AccessKey != primary || len(k.NonPrimary) != 3 {
				t.Fatalf("stored primary %s (API %s), %d non-primary", k.AccessKey, primary, len(k.NonPrimary))
			}
			e.sim.FailNext(2, status)
			e.passOverlap()
			e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
			if k := e.assertSettled("after retire under faults", settled{}); k.AccessKey != primary {
				t.Fatalf("after retire under faults the primary is %s, want %s", k.AccessKey, primary)
			}
		})
	}
}

func TestRotateCreateRefusedLeavesEverythingAsItWas(t *testing.T) {
	e := newStoredSite(t)
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, createHook: func(context.Context, string, string) (sigsci.KeySet, error) {
			return sigsci.KeySet{}, &sigsci.APIError{Method: "POST", Path: "/corps/acme/sites/www/agentKeys", StatusCode: 400, Message: "too many key sets"}
		}}
	})
	before := e.storageSnapshot()
	e.fails(logical.UpdateOperation, "rotate/sites/www", nil, http.StatusBadGateway, "too many key sets")
	e.assertStorageUnchanged(before) // includes: no WAL entry left
	if all, _ := e.simSets("acme", "www"); len(all) != 1 {
		t.Fatalf("API sets: %v", all)
	}
}

func TestRotateAnswerLostAfterTheAPICreated(t *testing.T) {
	e := newStoredSite(t)
	old := e.stored("vault-user", "www")
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, createHook: func(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
			// The API creates the set, then the connection drops unanswered.
			e.sim.DropNextAfterHandling(1)
			return c.CreateKeySet(ctx, corp, site)
		}}
	})

	rot := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	k := e.assertSettled("after a lost answer", settled{nonPrimary: []string{old.AccessKey}})
	if str(t, rot, "accessKey") != k.AccessKey || k.SecretKey == "" {
		t.Fatalf("answer %v, stored after a lost answer: %v", rot.Data["accessKey"], k)
	}
}

func TestRotateCreateTimesOutBeforeTheAPIActs(t *testing.T) {
	e := newStoredSite(t)
	e.tuneClients(func(cfg *sigsci.Config) { cfg.Timeout = 100 * time.Millisecond })
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, createHook: func(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
			e.sim.SetLatency(time.Minute) // the API never answers in time
			defer e.sim.SetLatency(0)
			return c.CreateKeySet(ctx, corp, site)
		}}
	})
	old := e.stored("vault-user", "www")
	before := e.storageSnapshot()
	apiBefore, _ := e.simSets("acme", "www")

	e.fails(logical.UpdateOperation, "rotate/sites/www", nil, http.StatusGatewayTimeout, "no answer within")
	if got := e.stored("vault-user", "www"); got.AccessKey != old.AccessKey || len(got.NonPrimary) != 0 {
		t.Fatalf("a create without an answer changed the stored keys: %v", got)
	}
	// Vault cannot know that the API did not act: the WAL entry stays until
	// a later look at the API finds nothing new.
	if e.walCount() != 1 {
		t.Fatal("a create without an answer must leave its WAL entry")
	}
	e.rollback()
	e.assertStorageUnchanged(before)
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, apiBefore) {
		t.Fatalf("API changed: %v", all)
	}
}

// A create that may have reached the API, or that the API reported as done,
// can produce its set after Vault listed the sets: the rollback must find the
// set and store it, not leave it orphaned at the API.
func TestRotateSetAppearingAfterTheListIsStoredByRollback(t *testing.T) {
	for name, tc := range map[string]struct {
		createErr  error
		status     int
		wantInText string
	}{
		"outcome unknown": {
			createErr:  fmt.Errorf("%w: sigsci: POST /corps/acme/sites/www/agentKeys: 503 Service Unavailable", sigsci.ErrOutcomeUnknown),
			status:     http.StatusBadGateway,
			wantInText: "Vault checks the site again",
		},
		"success not listed yet": {
			status:     http.StatusBadGateway,
			wantInText: "lists no new primary key set",
		},
		"created, then the follow-up list failed": {
			createErr: fmt.Errorf("sigsci: key set created but its answer was empty, and listing failed: %w",
				&sigsci.APIError{Method: http.MethodGet, Path: "/corps/acme/sites/www/agentKeys", StatusCode: 400, Message: "bad request"}),
			status:     http.StatusBadGateway,
			wantInText: "Vault checks the site again",
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			e.writeRole("vault-user", "acme")
			e.copySite("vault-user", "www")
			old := e.stored("vault-user", "www")
			e.wrapAPI(func(c keysAPI) keysAPI {
				return &faultyAPI{keysAPI: c, createHook: func(context.Context, string, string) (sigsci.KeySet, error) {
					// The API has not made the set yet when Vault lists.
					return sigsci.KeySet{AccessKey: "not-yet-listed", SecretKey: "s", Primary: true}, tc.createErr
				}}
			})

			e.fails(logical.UpdateOperation, "rotate/sites/www", nil, tc.status, tc.wantInText)
			if e.stored("vault-user", "www").AccessKey != old.AccessKey {
				t.Fatal("an unconfirmed create changed the stored key")
			}
			late := e.createAtAPI("www") // the API finishes the create late
			e.rollback()
			k := e.assertSettled("after the rollback", settled{nonPrimary: []string{old.AccessKey}})
			if k.AccessKey != late || k.SecretKey == "" {
				t.Fatalf("the late set %s was not stored: %v", late, k)
			}
		})
	}
}

func TestRotateAPIUnreachableChangesNothing(t *testing.T) {
	e := newStoredSite(t)
	before := e.storageSnapshot()
	e.sim.FailNext(100, http.StatusBadGateway)
	e.fails(logical.UpdateOperation, "rotate/sites/www", nil, http.StatusBadGateway, "listing the key sets")
	e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusBadGateway, "listing the key sets")
	e.sim.FailNext(0, 0)
	e.assertStorageUnchanged(before)
	if all, _ := e.simSets("acme", "www"); len(all) != 1 {
		t.Fatalf("API changed: %v", all)
	}
}

// A retirement deletes only the non-primary sets this mount stored: a set a
// person made in the dashboard (now non-primary) stays, reported as
// untracked.
func TestRetireLeavesANonPrimarySetMadeElsewhere(t *testing.T) {
	e := newStoredSite(t)
	old := e.stored("vault-user", "www").AccessKey
	outside := e.createAtAPI("www")
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)

	e.passOverlap()
	ret := e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	all, primary := e.simSets("acme", "www")
	if !reflect.DeepEqual(all, []string{outside, primary}) {
		t.Fatalf("API after retire: %v, want the outside set %s and the primary %s", all, outside, primary)
	}
	if got := ret.Data["retired"]; !reflect.DeepEqual(got, []string{old}) {
		t.Fatalf("retired = %v, want [%s]", got, old)
	}
	if got := stringsField(t, ret.Data, "untracked"); !reflect.DeepEqual(got, []string{outside}) {
		t.Fatalf("untracked = %v, want [%s]", got, outside)
	}
}

func TestRetireLostDeleteAnswerStillRetires(t *testing.T) {
	e := newStoredSite(t)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, deleteHook: func(ctx context.Context, corp, site, accessKey string) error {
			// The API deletes, the answer is lost, the client retries: 404.
			e.sim.DropNextAfterHandling(1)
			return c.DeleteKeySet(ctx, corp, site, accessKey)
		}}
	})
	old := e.stored("vault-user", "www").nonPrimaryAccessKeys()
	e.passOverlap()
	resp := e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	if got := resp.Data["retired"]; !reflect.DeepEqual(got, old) {
		t.Fatalf("retired = %v, want %v", got, old)
	}
	_, primary := e.simSets("acme", "www")
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, []string{primary}) {
		t.Fatalf("API after retire: %v", all)
	}
}

func TestRetireFailedDeleteIsReportedAndProgressKept(t *testing.T) {
	e := newStoredSite(t)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	nonPrimary := e.stored("vault-user", "www").nonPrimaryAccessKeys()
	deletes := 0
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, deleteHook: func(ctx context.Context, corp, site, accessKey string) error {
			deletes++
			if deletes == 2 {
				e.sim.FailNext(100, http.StatusInternalServerError)
				defer e.sim.FailNext(0, 0)
			}
			return c.DeleteKeySet(ctx, corp, site, accessKey)
		}}
	})

	e.passOverlap()
	msg := e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusBadGateway, "run the delete again")
	if !strings.Contains(msg, "retired so far: "+nonPrimary[0]) {
		t.Fatalf("error does not say what was retired: %s", msg)
	}
	// A reported failure leaves no WAL entry to replay.
	e.assertSettled("after a partial retire", settled{nonPrimary: nonPrimary[1:]})
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	e.assertSettled("after the second retire", settled{})
}

// A key set someone else creates (another mount, Terraform, a person in the
// dashboard) while Vault rotates is not Vault's to delete: it stays at the
// API and the answer reports it as untracked.
func TestRotateSetMadeElsewhereDuringTheRotationIsLeftAndReported(t *testing.T) {
	e := newStoredSite(t)
	old := e.stored("vault-user", "www")
	var outside string
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, createHook: func(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
			outside = e.createAtAPI(site) // a person rotates in the dashboard meanwhile
			return c.CreateKeySet(ctx, corp, site)
		}}
	})

	rot := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	k := e.assertSettled("after a rotation beside an outside create",
		settled{nonPrimary: []string{old.AccessKey}, untracked: []string{outside}})
	if str(t, rot, "accessKey") != k.AccessKey {
		t.Fatalf("answer %v, stored %v", rot.Data["accessKey"], k)
	}
	if got := stringsField(t, rot.Data, "untracked"); !reflect.DeepEqual(got, []string{outside}) {
		t.Fatalf("untracked = %v, want [%s]", got, outside)
	}
}

func TestRotateUnconfirmedRotationIsCompletedLater(t *testing.T) {
	e := newStoredSite(t)
	old := e.stored("vault-user", "www")
	down := true
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, listHook: func(ctx context.Context, call int, corp, site string) ([]sigsci.KeySet, error) {
			if call == 2 && down { // the list after the create
				return nil, &sigsci.APIError{Method: "GET", Path: "/corps/acme/sites/www/agentKeys", StatusCode: 503, Message: "unavailable"}
			}
			return c.ListKeySets(ctx, corp, site)
		}}
	})

	e.fails(logical.UpdateOperation, "rotate/sites/www", nil, http.StatusBadGateway, "could not be confirmed")
	if e.walCount() != 1 {
		t.Fatal("an unconfirmed rotation must leave its WAL entry")
	}
	if e.stored("vault-user", "www").AccessKey != old.AccessKey {
		t.Fatal("an unconfirmed rotation changed the stored key")
	}
	down = false
	e.ok(logical.RollbackOperation, "", map[string]interface{}{"immediate": true})
	e.assertSettled("after rollback", settled{nonPrimary: []string{old.AccessKey}})
}

func TestRotateWarnsWhenNonPrimarySetsPileUp(t *testing.T) {
	e := newStoredSite(t)
	first := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	if len(first.Warnings) != 0 {
		t.Fatalf("first rotation warned: %v", first.Warnings)
	}
	second := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	if len(second.Warnings) != 1 || !strings.Contains(second.Warnings[0], "2 non-primary key sets") {
		t.Fatalf("second rotation warnings: %v", second.Warnings)
	}
}

func TestRotateCallerGoingAwayAfterTheCreateStillFinishes(t *testing.T) {
	e := newStoredSite(t)
	old := e.stored("vault-user", "www")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, createHook: func(callCtx context.Context, corp, site string) (sigsci.KeySet, error) {
			ks, err := c.CreateKeySet(callCtx, corp, site)
			cancel() // the CLI is interrupted right after the API created the set
			return ks, err
		}}
	})

	_, err := e.b.HandleRequest(ctx, &logical.Request{
		Operation: logical.UpdateOperation, Path: "rotate/sites/www", Storage: e.storage,
	})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	e.assertSettled("after the caller went away", settled{nonPrimary: []string{old.AccessKey}})
}

func TestRetireRefusedWhileAnotherRoleHandsOutTheOldKey(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.writeRole("second", "acme") // another identity of the same corp
	e.copySite("vault-user", "www")
	e.copySite("second", "www")
	rot := e.ok(logical.UpdateOperation, "rotate/sites/www", map[string]interface{}{"role": "vault-user"})
	if len(rot.Warnings) != 1 || !strings.Contains(rot.Warnings[0], `role(s) second of the same corp also hold site "www"`) {
		t.Fatalf("rotate warnings: %v", rot.Warnings)
	}

	e.passOverlap()
	before := e.storageSnapshot()
	e.fails(logical.DeleteOperation, "rotate/sites/www", map[string]interface{}{"role": "vault-user"}, http.StatusConflict,
		`role "second" still hands out key set`)
	e.assertStorageUnchanged(before)
	if all, _ := e.simSets("acme", "www"); len(all) != 2 {
		t.Fatalf("a refused retire deleted sets: %v", all)
	}

	e.copySite("second", "www") // now it hands out the new primary
	e.ok(logical.DeleteOperation, "rotate/sites/www", map[string]interface{}{"role": "vault-user"})
	_, primary := e.simSets("acme", "www")
	if got := str(t, e.ok(logical.ReadOperation, "creds/second/sites/www", nil), "accessKey"); got != primary {
		t.Fatalf("role second reads %s, API primary %s", got, primary)
	}
}

// Rotate and retire hold their role while they change the API, like a copy:
// the role cannot be deleted or moved to another corp under them, so they
// always work under the lock of the corp they change.
func TestRotateHoldsOffRoleWritesWhileItChangesTheAPI(t *testing.T) {
	e := newStoredSite(t)
	roleLock := locksutil.LockForKey(e.b.roleLocks, "vault-user")
	checks := 0
	roleHeld := func() {
		checks++
		if roleLock.TryLock() {
			roleLock.Unlock()
			t.Error("a role write could run while the API was being changed for the role")
		}
	}
	e.rotateAndRetireWatched(roleHeld, nil)
	if checks != 2 {
		t.Fatalf("checked the role lock %d times, want once for the create and once for the delete", checks)
	}
	if !roleLock.TryLock() {
		t.Fatal("rotate or retire left the role locked")
	}
	roleLock.Unlock()
}

// A list whose sets all lack the primary mark (an answer whose shape
// changed) must not make the new set look like a stray to delete.
func TestRotateListWithoutPrimaryDeletesNothing(t *testing.T) {
	e := newStoredSite(t)
	old := e.stored("vault-user", "www")
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, listHook: func(ctx context.Context, call int, corp, site string) ([]sigsci.KeySet, error) {
			sets, err := c.ListKeySets(ctx, corp, site)
			if call == 2 { // the list after the create
				for i := range sets {
					sets[i].Primary = false
				}
			}
			return sets, err
		}}
	})
	e.sim.ResetCalls()

	e.fails(logical.UpdateOperation, "rotate/sites/www", nil, http.StatusBadGateway, "lists no primary key set")
	if n := e.sim.Calls(sigscisim.EndpointDeleteKeySet); n != 0 {
		t.Fatalf("%d key set deletes on a list without a primary", n)
	}
	if e.stored("vault-user", "www").AccessKey != old.AccessKey || e.walCount() != 1 {
		t.Fatal("want the stored key unchanged and the WAL entry kept")
	}
	e.rollback() // a sound answer now: the new set is stored
	e.assertSettled("after rollback", settled{nonPrimary: []string{old.AccessKey}})
}

// The list taken before the create decides which sets are new. A broken
// answer there would make every older set look new, and those Vault does
// not track (made in the dashboard, perhaps run by hosts outside Vault)
// would be deleted as strays: the rotation must not start on it.
func TestRotateBrokenListBeforeTheCreateStartsNothing(t *testing.T) {
	e := newStoredSite(t)
	outside := e.createAtAPI("www") // made in the dashboard, never copied
	e.createAtAPI("www")
	e.copySite("vault-user", "www")
	if e.stored("vault-user", "www").tracks(outside) {
		t.Fatal("setup: the dashboard set must be unknown to Vault")
	}
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, listHook: func(ctx context.Context, call int, corp, site string) ([]sigsci.KeySet, error) {
			if call == 1 {
				return []sigsci.KeySet{}, nil
			}
			return c.ListKeySets(ctx, corp, site)
		}}
	})
	before := e.storageSnapshot()
	apiBefore, _ := e.simSets("acme", "www")
	e.sim.ResetCalls()

	e.fails(logical.UpdateOperation, "rotate/sites/www", nil, http.StatusBadGateway, "lists no primary key set")
	if n := e.sim.Calls(sigscisim.EndpointCreateKeySet); n != 0 {
		t.Fatalf("%d creates after a broken list", n)
	}
	e.assertStorageUnchanged(before)
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, apiBefore) || !slices.Contains(all, outside) {
		t.Fatalf("API sets %v, want %v", all, apiBefore)
	}
}

// A rotate retried after a lost answer (a failover, a timeout) must not
// rotate twice: with expected_primary it is a compare-and-swap, refused
// once the primary moved on, on both rotate paths.
func TestRotateExpectedPrimaryMakesRotateACompareAndSwap(t *testing.T) {
	e := newStoredSite(t)
	first := e.stored("vault-user", "www").AccessKey

	second := str(t, e.ok(logical.UpdateOperation, "rotate/sites/www", map[string]interface{}{"expected_primary": first}), "accessKey")
	before := e.storageSnapshot()
	e.sim.ResetCalls()
	for _, path := range []string{"rotate/sites/www", "rotate/vault-user/sites/www"} {
		e.fails(logical.UpdateOperation, path, map[string]interface{}{"expected_primary": first}, http.StatusPreconditionFailed,
			`the primary key set of site "www" is `+second+`, not the expected `+first+`; it was rotated meanwhile: nothing changed`)
	}
	if n := e.remoteChanges(); n != 0 {
		t.Fatalf("a refused compare-and-swap made %d creates or deletes", n)
	}
	e.assertStorageUnchanged(before)
	third := str(t, e.ok(logical.UpdateOperation, "rotate/vault-user/sites/www", map[string]interface{}{"expected_primary": second}), "accessKey")
	if third == second || e.stored("vault-user", "www").AccessKey != third {
		t.Fatalf("the compare-and-swap with the current primary did not rotate: %s", third)
	}
}

// The retry meets the rotation it retries still pending (the old active
// node was killed after the create): Vault completes that rotation first,
// and the compare-and-swap then sees the primary it moved to.
func TestRotateExpectedPrimarySeesAPendingRotationCompleted(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterrupted(t, e)
	landed := e.createAtAPI("www")
	e.sim.ResetCalls()

	e.fails(logical.UpdateOperation, "rotate/sites/www", map[string]interface{}{"expected_primary": old.AccessKey},
		http.StatusPreconditionFailed, "is "+landed+", not the expected "+old.AccessKey)
	if n := e.sim.Calls(sigscisim.EndpointCreateKeySet); n != 0 {
		t.Fatalf("%d creates", n)
	}
	if k := e.assertSettled("after the refused rotate", settled{nonPrimary: []string{old.AccessKey}}); k.AccessKey != landed {
		t.Fatalf("the pending rotation was not completed first: stored %v", k)
	}
}

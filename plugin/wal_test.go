package plugin

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// These tests write WAL entries by hand, as an interrupted operation would
// have left them at each step, set the API up in the matching state, and
// check that recovery (Vault's rollback, start-up, or the next operation on
// the site) finishes the job: nothing orphaned at the API, nothing lost.

// rotationInterrupted prepares site www of role vault-user with one stored
// key set, and writes the WAL entry a rotation writes before its create.
func rotationInterrupted(t *testing.T, e *testEnv) (old *storedKeys, before []string) {
	t.Helper()
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www")
	old = e.stored("vault-user", "www")
	before, _ = e.simSets("acme", "www")
	e.putWAL(walKindRotate, map[string]interface{}{
		"op_id": "op-rotate-1", "role": "vault-user", "corp": "acme", "site": "www",
		"before": before, "previous_primary": old.AccessKey,
	})
	return old, before
}

func (e *testEnv) putWAL(kind string, data map[string]interface{}) {
	e.t.Helper()
	if _, err := framework.PutWAL(context.Background(), e.storage, kind, data); err != nil {
		e.t.Fatalf("put WAL: %v", err)
	}
}

// createAtAPI does the create an interrupted rotation had already done.
func (e *testEnv) createAtAPI(site string) string {
	e.t.Helper()
	ks, err := e.acmeAPI().CreateKeySet(context.Background(), "acme", site)
	if err != nil {
		e.t.Fatalf("create at API: %v", err)
	}
	return ks.AccessKey
}

func (e *testEnv) rollback() {
	e.t.Helper()
	e.ok(logical.RollbackOperation, "", map[string]interface{}{"immediate": true})
}

func TestWAL_RotateCrashedBeforeCreate(t *testing.T) {
	e := newTestEnv(t)
	old, before := rotationInterrupted(t, e)
	snapshotKeys := *e.stored("vault-user", "www")

	e.rollback()
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, before) {
		t.Fatalf("nothing to undo, but the API changed: %v", all)
	}
	k := e.stored("vault-user", "www")
	if k.AccessKey != old.AccessKey || !reflect.DeepEqual(*k, snapshotKeys) {
		t.Fatal("nothing to undo, but storage changed")
	}
	if e.walCount() != 0 {
		t.Fatal("WAL entry left")
	}
}

func TestWAL_RotateCrashedAfterCreateBeforeStore(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterrupted(t, e)
	created := e.createAtAPI("www")
	clock := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
	e.clock.Set(clock)

	e.rollback()
	k := e.stored("vault-user", "www")
	_, primary := e.simSets("acme", "www")
	if k.AccessKey != created || primary != created || k.SecretKey == "" {
		t.Fatalf("recovery did not store the created set: stored %s, created %s", k.AccessKey, created)
	}
	if !reflect.DeepEqual(k.nonPrimaryAccessKeys(), []string{old.AccessKey}) || k.NonPrimary[0].SecretKey != old.SecretKey {
		t.Fatal("the old primary must be kept as non-primary with its secret")
	}
	if !k.LastVaultRotation.Equal(clock) {
		t.Fatalf("last_vault_rotation = %v", k.LastVaultRotation)
	}
	if e.walCount() != 0 {
		t.Fatal("WAL entry left")
	}
	// The finished rotation can be retired like any other.
	e.passOverlap()
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, []string{created}) {
		t.Fatalf("after retire: %v", all)
	}
}

func TestWAL_RotateCrashedAfterStoreBeforeWALDelete(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www")
	before, _ := e.simSets("acme", "www")
	old := e.stored("vault-user", "www")
	// A complete rotation whose WAL delete never happened.
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.putWAL(walKindRotate, map[string]interface{}{
		"op_id": "op-rotate-2", "role": "vault-user", "corp": "acme", "site": "www",
		"before": before, "previous_primary": old.AccessKey,
	})
	done := *e.stored("vault-user", "www")
	apiBefore, _ := e.simSets("acme", "www")

	e.rollback()
	if got := *e.stored("vault-user", "www"); !reflect.DeepEqual(got, done) {
		t.Fatal("re-running a finished rotation changed storage")
	}
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, apiBefore) {
		t.Fatal("re-running a finished rotation changed the API")
	}
	if e.walCount() != 0 {
		t.Fatal("WAL entry left")
	}
}

// A set made outside Vault after the interrupted rotation listed the
// sets is not the rotation's to delete: recovery stores the new primary and
// leaves the other one alone.
func TestWAL_RecoveryLeavesASetMadeElsewhere(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterrupted(t, e)
	outside := e.createAtAPI("www")
	created := e.createAtAPI("www") // primary now

	e.rollback()
	all, primary := e.simSets("acme", "www")
	if primary != created || !slices.Contains(all, outside) || len(all) != 3 {
		t.Fatalf("API after recovery: %v (the set %s made elsewhere must stay)", all, outside)
	}
	k := e.stored("vault-user", "www")
	if k.AccessKey != created || !reflect.DeepEqual(k.nonPrimaryAccessKeys(), []string{old.AccessKey}) || k.tracks(outside) {
		t.Fatalf("stored after recovery: %v", k)
	}
	if e.walCount() != 0 {
		t.Fatal("WAL entry left")
	}
}

func TestWAL_RotateRecoveredAtStartup(t *testing.T) {
	e := newTestEnv(t)
	rotationInterrupted(t, e)
	created := e.createAtAPI("www")

	if err := e.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.b.recovered:
	case <-time.After(10 * time.Second):
		t.Fatal("start-up recovery did not finish")
	}
	if k := e.stored("vault-user", "www"); k.AccessKey != created {
		t.Fatalf("start-up recovery did not store the created set: %s", k.AccessKey)
	}
	if e.walCount() != 0 {
		t.Fatal("WAL entry left")
	}
	if !strings.Contains(e.logs.String(), "completed an interrupted rotation") {
		t.Fatalf("recovery not logged:\n%s", e.logs.String())
	}
}

func TestWAL_PendingRotationCompletedBeforeTheNextOne(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterrupted(t, e)
	first := e.createAtAPI("www")

	rot := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	second := str(t, rot, "accessKey")
	all, primary := e.simSets("acme", "www")
	if len(all) != 3 || primary != second {
		t.Fatalf("API: %v primary %s", all, primary)
	}
	k := e.stored("vault-user", "www")
	if k.AccessKey != second || !reflect.DeepEqual(k.nonPrimaryAccessKeys(), []string{old.AccessKey, first}) {
		t.Fatalf("stored: %v", k)
	}
	if e.walCount() != 0 {
		t.Fatal("WAL entries left")
	}
}

func TestWAL_YoungEntriesWaitForTheirOperation(t *testing.T) {
	e := newTestEnv(t)
	rotationInterrupted(t, e)
	e.createAtAPI("www")
	before := e.storageSnapshot()
	// A periodic rollback (not "immediate") leaves an entry younger than
	// the minimum age alone: its operation may still be running.
	e.ok(logical.RollbackOperation, "", nil)
	e.assertStorageUnchanged(before)
}

func TestWAL_RollbackSkipsAnEntryCompletedMeanwhile(t *testing.T) {
	e := newTestEnv(t)
	rotationInterrupted(t, e)
	// The framework hands over the data of an entry that a request has
	// completed (and deleted) in the meantime: nothing may happen.
	var data interface{}
	records, err := e.b.listWALOps(context.Background(), e.storage)
	if err != nil || len(records) != 1 {
		t.Fatalf("records: %v %v", records, err)
	}
	data = records[0].op
	if err := framework.DeleteWAL(context.Background(), e.storage, records[0].id); err != nil {
		t.Fatal(err)
	}
	e.createAtAPI("www") // would be stored if the stale entry were acted on
	before := e.storageSnapshot()
	req := &logical.Request{Storage: e.storage}
	if err := e.b.walRollback(context.Background(), req, walKindRotate, data); err != nil {
		t.Fatal(err)
	}
	e.assertStorageUnchanged(before)
}

func TestWAL_EntriesThatCanNeverCompleteAreDropped(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.putWAL(walKindRotate, map[string]interface{}{ // role gone
		"op_id": "a", "role": "gone", "corp": "acme", "site": "www",
	})
	e.putWAL(walKindRotate, map[string]interface{}{ // site gone at the API
		"op_id": "b", "role": "vault-user", "corp": "acme", "site": "deleted-site",
	})
	e.putWAL(walKindRetire, map[string]interface{}{"garbage": true})
	e.putWAL("some-other-kind", map[string]interface{}{"x": 1})
	e.rollback()
	if n := e.walCount(); n != 0 {
		t.Fatalf("%d WAL entries left", n)
	}
}

func TestWAL_RoleDeleteWaitsForPendingOperations(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.putWAL(walKindRotate, map[string]interface{}{
		"op_id": "a", "role": "vault-user", "corp": "acme", "site": "www", "before": []string{},
	})
	e.fails(logical.DeleteOperation, "role/vault-user", nil, 400, "unfinished rotation or retirement for site(s) www")
	resp := e.ok(logical.DeleteOperation, "role/vault-user", map[string]interface{}{"force": true})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "www") {
		t.Fatalf("forced delete warnings: %v", resp.Warnings)
	}
}

// retirementInterrupted prepares site www with two rotations (three sets at
// the API, two of them non-primary) and the WAL entry a retirement writes
// before its deletes.
func retirementInterrupted(t *testing.T, e *testEnv) (primary string, retire []string) {
	t.Helper()
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www")
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	k := e.stored("vault-user", "www")
	retire = k.nonPrimaryAccessKeys()
	if len(retire) != 2 {
		t.Fatalf("setup: %d non-primary", len(retire))
	}
	e.putWAL(walKindRetire, map[string]interface{}{
		"op_id": "op-retire-1", "role": "vault-user", "corp": "acme", "site": "www",
		"primary": k.AccessKey, "retire": retire,
	})
	return k.AccessKey, retire
}

func (e *testEnv) assertRetired(primary string) {
	e.t.Helper()
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, []string{primary}) {
		e.t.Fatalf("API after recovered retirement: %v, want only %s", all, primary)
	}
	k := e.stored("vault-user", "www")
	if k.AccessKey != primary || len(k.NonPrimary) != 0 {
		e.t.Fatalf("stored after recovered retirement: %v", k)
	}
	if e.walCount() != 0 {
		e.t.Fatal("WAL entry left")
	}
}

func TestWAL_RetireCrashedBeforeAnyDelete(t *testing.T) {
	e := newTestEnv(t)
	primary, _ := retirementInterrupted(t, e)
	e.rollback()
	e.assertRetired(primary)
}

func TestWAL_RetireCrashedAfterSomeDeletes(t *testing.T) {
	e := newTestEnv(t)
	primary, retire := retirementInterrupted(t, e)
	if err := e.acmeAPI().DeleteKeySet(context.Background(), "acme", "www", retire[0]); err != nil {
		t.Fatal(err)
	}
	e.rollback()
	e.assertRetired(primary)
}

func TestWAL_RetireCrashedAfterAllDeletesBeforeStore(t *testing.T) {
	e := newTestEnv(t)
	primary, retire := retirementInterrupted(t, e)
	for _, a := range retire {
		if err := e.acmeAPI().DeleteKeySet(context.Background(), "acme", "www", a); err != nil {
			t.Fatal(err)
		}
	}
	e.rollback()
	e.assertRetired(primary)
}

func TestWAL_RetireCrashedAfterStoreBeforeWALDelete(t *testing.T) {
	e := newTestEnv(t)
	primary, _ := retirementInterrupted(t, e)
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil) // completes it (pending first)
	e.putWAL(walKindRetire, map[string]interface{}{
		"op_id": "op-retire-2", "role": "vault-user", "corp": "acme", "site": "www",
		"primary": primary, "retire": []string{"gone-1", "gone-2"},
	})
	e.rollback()
	e.assertRetired(primary)
}

// An API whose DELETE route answers 404 retires nothing: recovery keeps
// every stored set and gives the entry up with a warning instead of
// retrying it forever.
func TestWAL_RetireRecoveryAgainstADeleteRouteThatAnswers404(t *testing.T) {
	e := newTestEnv(t)
	_, retire := retirementInterrupted(t, e)
	if err := e.sim.SetDialect(sigscisim.Dialect{DeleteAnswer: sigscisim.DeleteWrongRoute404}); err != nil {
		t.Fatal(err)
	}
	e.rollback()
	if all, _ := e.simSets("acme", "www"); len(all) != 3 {
		t.Fatalf("the API has %v, want all three sets", all)
	}
	if got := e.stored("vault-user", "www").nonPrimaryAccessKeys(); !reflect.DeepEqual(got, retire) {
		t.Fatalf("stored non-primary %v, want %v kept", got, retire)
	}
	if e.walCount() != 0 || !strings.Contains(e.logs.String(), "still lists it") {
		t.Fatalf("%d WAL entries left; log:\n%s", e.walCount(), e.logs.String())
	}
}

func TestWAL_RetireNeverDeletesAPrimary(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www")
	k := e.stored("vault-user", "www")
	e.putWAL(walKindRetire, map[string]interface{}{
		"op_id": "op-retire-3", "role": "vault-user", "corp": "acme", "site": "www",
		"primary": "something-else", "retire": []string{k.AccessKey},
	})
	e.rollback()
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, []string{k.AccessKey}) {
		t.Fatalf("recovery deleted the primary: %v", all)
	}
	if e.walCount() != 0 {
		t.Fatal("WAL entry left")
	}
}

func TestWAL_EntriesHoldNoSecret(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www")
	secrets := []string{acmeToken, e.stored("vault-user", "www").SecretKey}
	walSeen := 0
	checkWAL := func() {
		for key, value := range e.storageSnapshot() {
			if !strings.HasPrefix(key, framework.WALPrefix) {
				continue
			}
			walSeen++
			for _, s := range secrets {
				if strings.Contains(value, s) {
					t.Errorf("WAL entry %s holds a secret", key)
				}
			}
		}
	}
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{
			keysAPI: c,
			createHook: func(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
				checkWAL()
				ks, err := c.CreateKeySet(ctx, corp, site)
				secrets = append(secrets, ks.SecretKey)
				return ks, err
			},
			deleteHook: func(ctx context.Context, corp, site, accessKey string) error {
				checkWAL()
				return c.DeleteKeySet(ctx, corp, site, accessKey)
			},
		}
	})
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.passOverlap()
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	if walSeen != 2 {
		t.Fatalf("saw %d WAL entries during the remote changes, want 2 (one per change)", walSeen)
	}
}

// A list of key sets without a primary set is a broken answer, never the
// site's real state: recovery must not read it as "every set to retire is
// gone already" and drop the stored sets.
func TestWAL_RetireRecoveryWaitsOutAListWithoutPrimary(t *testing.T) {
	e := newTestEnv(t)
	primary, _ := retirementInterrupted(t, e)
	broken := true
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, listHook: func(ctx context.Context, _ int, corp, site string) ([]sigsci.KeySet, error) {
			if broken {
				return []sigsci.KeySet{}, nil
			}
			return c.ListKeySets(ctx, corp, site)
		}}
	})
	before := e.storageSnapshot()

	resp, err := e.do(logical.RollbackOperation, "", map[string]interface{}{"immediate": true})
	if _, msg := statusOf(resp, err); !strings.Contains(msg, "lists no primary key set") {
		t.Fatalf("rollback on a list without primary: %q", msg)
	}
	e.assertStorageUnchanged(before) // stored sets and the WAL entry kept
	broken = false
	e.rollback()
	e.assertRetired(primary)
}

// Where writes are not safe (a performance standby, a performance secondary
// cluster), Vault's rollback must neither call the API nor let the framework
// drop the entry: the active node of the primary cluster completes it.
func TestWAL_RollbackDoesNothingWhereWritesAreNotSafe(t *testing.T) {
	for name, state := range map[string]consts.ReplicationState{
		"performance standby":   consts.ReplicationPerformanceStandby,
		"performance secondary": consts.ReplicationPerformanceSecondary,
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			rotationInterrupted(t, e)
			created := e.createAtAPI("www")
			sys := e.b.System().(*logical.StaticSystemView)
			sys.ReplicationStateVal = state
			before := e.storageSnapshot()
			e.sim.ResetCalls()

			_, _ = e.do(logical.RollbackOperation, "", map[string]interface{}{"immediate": true})
			if n := e.apiCalls(); n != 0 {
				t.Fatalf("the rollback made %d API calls where writes are not safe", n)
			}
			e.assertStorageUnchanged(before) // the WAL entry included

			sys.ReplicationStateVal = 0 // this node is the active one now
			e.rollback()
			if k := e.stored("vault-user", "www"); k.AccessKey != created || e.walCount() != 0 {
				t.Fatalf("the active node's rollback did not complete the rotation: stored %s, %d WAL entries", k.AccessKey, e.walCount())
			}
		})
	}
}

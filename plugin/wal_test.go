package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
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
	return rotationInterruptedAt(t, e, time.Time{})
}

// rotationInterruptedAt is rotationInterrupted for a rotation that started
// at a given time (zero: an entry of a version that did not record it).
func rotationInterruptedAt(t *testing.T, e *testEnv, started time.Time) (old *storedKeys, before []string) {
	t.Helper()
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www")
	old = e.stored("vault-user", "www")
	before, _ = e.simSets("acme", "www")
	data := map[string]interface{}{
		"op_id": "op-rotate-1", "role": "vault-user", "corp": "acme", "site": "www",
		"before": before, "previous_primary": old.AccessKey,
	}
	if !started.IsZero() {
		data["started"] = started
	}
	e.putWAL(walKindRotate, data)
	return old, before
}

// startOnNewActive starts a new backend instance of the mount over the same
// storage and waits for its start-up recovery, as on the node that becomes
// active after the old one was killed, or after a plugin reload.
func (e *testEnv) startOnNewActive() {
	e.t.Helper()
	e.startBackend()
	if err := e.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		e.t.Fatal(err)
	}
	select {
	case <-e.b.recovered:
	case <-time.After(10 * time.Second):
		e.t.Fatal("start-up recovery did not finish")
	}
}

// remoteChanges is the number of creates and deletes the simulator received.
func (e *testEnv) remoteChanges() int {
	return e.sim.Calls(sigscisim.EndpointCreateKeySet) + e.sim.Calls(sigscisim.EndpointDeleteKeySet)
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

func TestWALRotateCrashedBeforeCreate(t *testing.T) {
	e := newTestEnv(t)
	old, before := rotationInterrupted(t, e)
	snapshotKeys := *e.stored("vault-user", "www")

	e.rollback()
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, before) {
		t.Fatalf("nothing to undo, but the API changed: %v", all)
	}
	if k := e.assertSettled("after the rollback", settled{}); k.AccessKey != old.AccessKey || !reflect.DeepEqual(*k, snapshotKeys) {
		t.Fatal("nothing to undo, but storage changed")
	}
}

func TestWALRotateCrashedAfterCreateBeforeStore(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterrupted(t, e)
	created := e.createAtAPI("www")
	clock := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
	e.clock.Set(clock)

	e.rollback()
	k := e.assertSettled("after recovery", settled{nonPrimary: []string{old.AccessKey}})
	if k.AccessKey != created || k.SecretKey == "" {
		t.Fatalf("recovery did not store the created set: stored %s, created %s", k.AccessKey, created)
	}
	if k.NonPrimary[0].SecretKey != old.SecretKey {
		t.Fatal("the old primary must be kept as non-primary with its secret")
	}
	if !k.LastVaultRotation.Equal(clock) {
		t.Fatalf("last_vault_rotation = %v", k.LastVaultRotation)
	}
	// The finished rotation can be retired like any other.
	e.passOverlap()
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, []string{created}) {
		t.Fatalf("after retire: %v", all)
	}
}

func TestWALRotateCrashedAfterStoreBeforeWALDelete(t *testing.T) {
	e := newStoredSite(t)
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
	if k := e.assertSettled("after re-running a finished rotation", settled{nonPrimary: []string{old.AccessKey}}); !reflect.DeepEqual(*k, done) {
		t.Fatal("re-running a finished rotation changed storage")
	}
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, apiBefore) {
		t.Fatal("re-running a finished rotation changed the API")
	}
}

// A set made outside Vault after the interrupted rotation listed the
// sets is not the rotation's to delete: recovery stores the new primary and
// leaves the other one alone.
func TestWALRecoveryLeavesASetMadeElsewhere(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterrupted(t, e)
	outside := e.createAtAPI("www")
	created := e.createAtAPI("www") // primary now

	e.rollback()
	// The set made elsewhere stays at the API, untracked.
	k := e.assertSettled("after recovery", settled{nonPrimary: []string{old.AccessKey}, untracked: []string{outside}})
	if k.AccessKey != created {
		t.Fatalf("stored after recovery: %v, want the primary %s", k, created)
	}
}

func TestWALRotateRecoveredAtStartup(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterrupted(t, e)
	created := e.createAtAPI("www")

	if err := e.b.Initialize(context.Background(), &logical.InitializationRequest{Storage: e.storage}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.b.recovered:
	case <-time.After(10 * time.Second):
		t.Fatal("start-up recovery did not finish")
	}
	if k := e.assertSettled("after start-up recovery", settled{nonPrimary: []string{old.AccessKey}}); k.AccessKey != created {
		t.Fatalf("start-up recovery did not store the created set: %s", k.AccessKey)
	}
	if !strings.Contains(e.logs.String(), "completed an interrupted rotation") {
		t.Fatalf("recovery not logged:\n%s", e.logs.String())
	}
}

func TestWALPendingRotationCompletedBeforeTheNextOne(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterrupted(t, e)
	first := e.createAtAPI("www")

	rot := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	second := str(t, rot, "accessKey")
	if k := e.assertSettled("after the next rotation", settled{nonPrimary: []string{old.AccessKey, first}}); k.AccessKey != second {
		t.Fatalf("stored: %v, want the primary %s", k, second)
	}
}

func TestWALYoungEntriesWaitForTheirOperation(t *testing.T) {
	e := newTestEnv(t)
	rotationInterrupted(t, e)
	e.createAtAPI("www")
	before := e.storageSnapshot()
	// A periodic rollback (not "immediate") leaves an entry younger than
	// the minimum age alone: its operation may still be running.
	e.ok(logical.RollbackOperation, "", nil)
	e.assertStorageUnchanged(before)
}

func TestWALRollbackSkipsAnEntryCompletedMeanwhile(t *testing.T) {
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

func TestWALEntriesThatCanNeverCompleteAreDropped(t *testing.T) {
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

func TestWALRoleDeleteWaitsForPendingOperations(t *testing.T) {
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
	if k := e.assertSettled("after recovered retirement", settled{}); k.AccessKey != primary {
		e.t.Fatalf("stored after recovered retirement: %v, want only %s", k, primary)
	}
}

// A retirement interrupted at any step is finished by recovery.
func TestWALRetireCrashed(t *testing.T) {
	deleteAtAPI := func(t *testing.T, e *testEnv, accessKeys ...string) {
		t.Helper()
		for _, a := range accessKeys {
			if err := e.acmeAPI().DeleteKeySet(context.Background(), "acme", "www", a); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, e *testEnv, primary string, retire []string) // what happened before the crash
	}{
		{"before any delete", func(*testing.T, *testEnv, string, []string) {}},
		{"after some deletes", func(t *testing.T, e *testEnv, _ string, retire []string) {
			deleteAtAPI(t, e, retire[0])
		}},
		{"after all deletes before store", func(t *testing.T, e *testEnv, _ string, retire []string) {
			deleteAtAPI(t, e, retire...)
		}},
		{"after store before WAL delete", func(t *testing.T, e *testEnv, primary string, _ []string) {
			e.ok(logical.DeleteOperation, "rotate/sites/www", nil) // completes it (pending first)
			e.putWAL(walKindRetire, map[string]interface{}{
				"op_id": "op-retire-2", "role": "vault-user", "corp": "acme", "site": "www",
				"primary": primary, "retire": []string{"gone-1", "gone-2"},
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			primary, retire := retirementInterrupted(t, e)
			tc.crash(t, e, primary, retire)
			e.rollback()
			e.assertRetired(primary)
		})
	}
}

// An API whose DELETE route answers 404 retires nothing: recovery keeps
// every stored set and gives the entry up with a warning instead of
// retrying it forever.
func TestWALRetireRecoveryAgainstADeleteRouteThatAnswers404(t *testing.T) {
	e := newTestEnv(t)
	_, retire := retirementInterrupted(t, e)
	if err := e.sim.SetDialect(sigscisim.Dialect{DeleteAnswer: sigscisim.DeleteWrongRoute404}); err != nil {
		t.Fatal(err)
	}
	e.rollback()
	e.assertSettled("after recovery against a 404 route", settled{nonPrimary: retire})
	if !strings.Contains(e.logs.String(), "still lists it") {
		t.Fatalf("the entry given up is not logged:\n%s", e.logs.String())
	}
}

func TestWALRetireNeverDeletesAPrimary(t *testing.T) {
	e := newStoredSite(t)
	k := e.stored("vault-user", "www")
	e.putWAL(walKindRetire, map[string]interface{}{
		"op_id": "op-retire-3", "role": "vault-user", "corp": "acme", "site": "www",
		"primary": "something-else", "retire": []string{k.AccessKey},
	})
	e.rollback()
	if got := e.assertSettled("after recovery", settled{}); got.AccessKey != k.AccessKey {
		t.Fatalf("recovery deleted the primary: stored %v", got)
	}
}

func TestWALEntriesHoldNoSecret(t *testing.T) {
	e := newStoredSite(t)
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
	e.rotateAndRetireWatched(checkWAL, func(ks sigsci.KeySet) { secrets = append(secrets, ks.SecretKey) })
	if walSeen != 2 {
		t.Fatalf("saw %d WAL entries during the remote changes, want 2 (one per change)", walSeen)
	}
}

// A list of key sets without a primary set is a broken answer, never the
// site's real state: recovery must not read it as "every set to retire is
// gone already" and drop the stored sets.
func TestWALRetireRecoveryWaitsOutAListWithoutPrimary(t *testing.T) {
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
	// The stored sets and the WAL entry are kept; the entry records why.
	e.assertLastError("lists no primary key set")
	if !maps.Equal(withoutLastErrors(t, e.storageSnapshot()), withoutLastErrors(t, before)) {
		t.Fatal("storage changed beyond the WAL entry's last error")
	}
	broken = false
	e.rollback()
	e.assertRetired(primary)
}

// Where writes are not safe (a performance standby, a performance secondary
// cluster), Vault's rollback must neither call the API nor let the framework
// drop the entry: the active node of the primary cluster completes it.
func TestWALRollbackDoesNothingWhereWritesAreNotSafe(t *testing.T) {
	for name, state := range map[string]consts.ReplicationState{
		"performance standby":   consts.ReplicationPerformanceStandby,
		"performance secondary": consts.ReplicationPerformanceSecondary,
	} {
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t)
			old, _ := rotationInterrupted(t, e)
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
			if k := e.assertSettled("after the active node's rollback", settled{nonPrimary: []string{old.AccessKey}}); k.AccessKey != created {
				t.Fatalf("the active node's rollback did not complete the rotation: stored %s", k.AccessKey)
			}
		})
	}
}

// countingStorage counts the reads of the storage it wraps.
type countingStorage struct {
	logical.Storage
	gets atomic.Int64
}

func (c *countingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	c.gets.Add(1)
	return c.Storage.Get(ctx, key)
}

// A brownout can leave many rotations pending (a 5xx on each create): one
// rollback pass over them must read storage in proportion to their number,
// not to its square.
func TestWALRollbackReadsStorageInProportionToTheEntries(t *testing.T) {
	const maxGetsPerEntry = 8
	gets := map[int]int64{}
	for _, n := range []int{50, 200} {
		e := newTestEnv(t)
		e.writeRole("vault-user", "acme")
		e.copySite("vault-user", "www")
		before, _ := e.simSets("acme", "www")
		for i := range n {
			e.putWAL(walKindRotate, map[string]interface{}{
				"op_id": fmt.Sprintf("op-%d", i), "role": "vault-user", "corp": "acme", "site": "www", "before": before,
			})
		}
		storage := &countingStorage{Storage: e.storage}
		req := &logical.Request{Operation: logical.RollbackOperation, Storage: storage, MountPoint: "sigsci/",
			Data: map[string]interface{}{"immediate": true}}
		resp, err := e.b.HandleRequest(context.Background(), req)
		if err != nil || resp.IsError() {
			t.Fatalf("rollback of %d entries: %v %v", n, err, respError(resp))
		}
		e.b.auto.wg.Wait() // the periodic pass the rollback started reads the same storage
		if e.walCount() != 0 {
			t.Fatalf("%d of %d entries left", e.walCount(), n)
		}
		gets[n] = storage.gets.Load()
		t.Logf("rollback of %d pending rotations: %d storage reads", n, gets[n])
		if gets[n] > int64(maxGetsPerEntry*n) {
			t.Fatalf("rollback of %d entries read storage %d times, want at most %d", n, gets[n], maxGetsPerEntry*n)
		}
	}
	if gets[200] > 5*gets[50] {
		t.Fatalf("4x the entries cost %.1fx the reads", float64(gets[200])/float64(gets[50]))
	}
}

// Vault's rollback must not look at an entry while its operation may still
// run: the minimum age outlasts the longest an operation holds its entry.
func TestWALMinAgeOutlastsAnOperation(t *testing.T) {
	e := newTestEnv(t)
	if walRollbackMinAge < 5*time.Minute || walRollbackMinAge <= operationDeadline {
		t.Fatalf("WAL rollback min age %s, operation deadline %s", walRollbackMinAge, operationDeadline)
	}
	if e.b.WALRollbackMinAge != walRollbackMinAge {
		t.Fatalf("the framework's min age is %s", e.b.WALRollbackMinAge)
	}
}

// The active node is killed just after a rotation's create landed: the new
// active finishes the rotation as soon as it starts, though the entry is
// young, because the set is at the API (the create is over).
func TestWALStartupRecoveryFinishesALandedRotationAtOnce(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterruptedAt(t, e, e.clock.Now())
	created := e.createAtAPI("www")
	e.clock.Add(10 * time.Second)

	e.startOnNewActive()
	if k := e.assertSettled("after the new active started", settled{nonPrimary: []string{old.AccessKey}}); k.AccessKey != created {
		t.Fatalf("the new active did not finish the rotation: stored %v, created %s", k, created)
	}
}

// A new active node (or a reloaded plugin) starts while the old instance's
// create may still be in flight: start-up recovery leaves the entry, so the
// set is stored once it lands instead of being orphaned at the API. An
// entry past the operation's deadline is done by the next recovery.
func TestWALStartupRecoveryLeavesARotationThatMayStillRun(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterruptedAt(t, e, e.clock.Now())
	e.clock.Add(20 * time.Second)
	e.sim.ResetCalls()

	e.startOnNewActive()
	if e.walCount() != 1 {
		t.Fatal("start-up recovery dropped the entry of a rotation that may still be running")
	}
	if n := e.remoteChanges(); n != 0 {
		t.Fatalf("start-up recovery made %d creates or deletes", n)
	}
	if k := e.stored("vault-user", "www"); k.AccessKey != old.AccessKey || len(k.NonPrimary) != 0 {
		t.Fatalf("stored keys changed: %v", k)
	}
	late := e.createAtAPI("www") // the old instance's create lands
	e.rollback()                 // Vault's rollback, once the entry is old enough
	if k := e.assertSettled("after the late create landed", settled{nonPrimary: []string{old.AccessKey}}); k.AccessKey != late {
		t.Fatalf("the late set %s was not stored: %v", late, k)
	}

	// A rotation whose create never lands is dropped by a recovery after
	// its deadline.
	apiBefore, _ := e.simSets("acme", "www")
	e.putWAL(walKindRotate, map[string]interface{}{
		"op_id": "op-rotate-2", "role": "vault-user", "corp": "acme", "site": "www", "before": apiBefore, "started": e.clock.Now(),
	})
	e.clock.Add(operationDeadline + time.Second)
	stored := e.storageSnapshot()
	e.startOnNewActive()
	if e.walCount() != 0 {
		t.Fatal("an entry past its deadline was left by start-up recovery")
	}
	delete(stored, walKey(t, stored))
	e.assertStorageUnchanged(stored)
	if all, _ := e.simSets("acme", "www"); !reflect.DeepEqual(all, apiBefore) {
		t.Fatalf("API changed: %v", all)
	}
}

// walKey is the storage key of the only WAL entry in a snapshot.
func walKey(t *testing.T, snapshot map[string]string) string {
	t.Helper()
	var keys []string
	for k := range snapshot {
		if strings.HasPrefix(k, framework.WALPrefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("want one WAL entry, got %v", keys)
	}
	return keys[0]
}

// A rotate request meets a rotation another instance may still be running
// (just after a plugin reload or a change of active node): it is refused
// with a clear message instead of racing it, and goes through once the
// other rotation's deadline has passed.
func TestRotateWaitsForARotationAnotherInstanceMayStillRun(t *testing.T) {
	e := newTestEnv(t)
	old, _ := rotationInterruptedAt(t, e, e.clock.Now())
	e.startOnNewActive()
	e.sim.ResetCalls()

	e.fails(logical.UpdateOperation, "rotate/sites/www", nil, http.StatusServiceUnavailable, "may still be running")
	if n := e.remoteChanges(); n != 0 {
		t.Fatalf("a refused rotate made %d creates or deletes", n)
	}
	e.clock.Add(operationDeadline)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.assertSettled("after the deadline", settled{nonPrimary: []string{old.AccessKey}})
}

// A retirement whose deletes the API keeps failing blocks the site's
// rotations and retirements, visibly (kind, age, last error), until
// pending_max_age; then it is given up (logged once, still listed) and the
// next rotation goes through and reports it.
func TestWALStuckOperationStopsBlockingTheSiteAfterPendingMaxAge(t *testing.T) {
	e := newStoredSite(t)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	k := e.stored("vault-user", "www")
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, deleteHook: func(_ context.Context, _, site, accessKey string) error {
			return &sigsci.APIError{Method: http.MethodDelete, Path: "/corps/acme/sites/" + site + "/agentKeys/" + accessKey, StatusCode: 503, Message: "deletes are down"}
		}}
	})
	e.putWAL(walKindRetire, map[string]interface{}{
		"op_id": "op-stuck", "role": "vault-user", "corp": "acme", "site": "www",
		"primary": k.AccessKey, "retire": k.nonPrimaryAccessKeys(), "started": e.clock.Now(),
	})
	e.clock.Add(90 * time.Second)

	e.fails(logical.UpdateOperation, "rotate/sites/www", nil, http.StatusServiceUnavailable, "deletes are down")
	pending := e.pendingOperations("www")
	if len(pending) != 1 || pending[0]["operation"] != "retire" || pending[0]["age"] != 90 ||
		!strings.Contains(fmt.Sprint(pending[0]["last_error"]), "deletes are down") || pending[0]["given_up_at"] != nil {
		t.Fatalf("pending_operations = %v", pending)
	}

	e.clock.Add(24 * time.Hour)
	for range 2 {
		_, _ = e.do(logical.RollbackOperation, "", map[string]interface{}{"immediate": true})
	}
	pending = e.pendingOperations("www")
	if len(pending) != 1 || pending[0]["given_up_at"] != e.clock.Now().Format(time.RFC3339) {
		t.Fatalf("a given-up operation must stay listed: %v", pending)
	}
	if n := strings.Count(e.logs.String(), "gave up an unfinished operation"); n != 1 {
		t.Fatalf("the give-up was logged %d times, want once:\n%s", n, e.logs.String())
	}

	rot := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	if len(rot.Warnings) == 0 || !strings.Contains(strings.Join(rot.Warnings, "\n"), "gave up an unfinished retire") {
		t.Fatalf("the rotation after a given-up operation warns %v", rot.Warnings)
	}
	if e.walCount() != 0 || len(e.pendingOperations("www")) != 0 {
		t.Fatal("the reported operation is still pending")
	}
}

// pendingOperations reads the pending_operations of a site's rotation status.
func (e *testEnv) pendingOperations(site string) []map[string]interface{} {
	e.t.Helper()
	return e.ok(logical.ReadOperation, "rotate/sites/"+site, nil).Data["pending_operations"].([]map[string]interface{})
}

// withoutLastErrors returns a storage snapshot with the last errors taken
// out of its WAL entries, to compare snapshots taken before and after
// recovery recorded one.
func withoutLastErrors(t *testing.T, snapshot map[string]string) map[string]string {
	t.Helper()
	out := maps.Clone(snapshot)
	for key, value := range snapshot {
		if !strings.HasPrefix(key, framework.WALPrefix) {
			continue
		}
		var entry framework.WALEntry
		if err := json.Unmarshal([]byte(value), &entry); err != nil {
			t.Fatal(err)
		}
		data := entry.Data.(map[string]interface{})
		delete(data, "last_error")
		raw, err := json.Marshal(&entry)
		if err != nil {
			t.Fatal(err)
		}
		out[key] = string(raw)
	}
	return out
}

// assertLastError checks that every WAL entry records a last error
// containing want.
func (e *testEnv) assertLastError(want string) {
	e.t.Helper()
	records, err := e.b.listWALOps(context.Background(), e.storage)
	if err != nil || len(records) == 0 {
		e.t.Fatalf("WAL entries: %v %v", records, err)
	}
	for _, rec := range records {
		if !strings.Contains(rec.op.LastError, want) {
			e.t.Fatalf("WAL entry of site %s: last error %q, want %q in it", rec.op.Site, rec.op.LastError, want)
		}
	}
}

package plugin

import (
	"context"
	"net/http"
	"reflect"
	"slices"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

func TestNewKeySetsSortsWhatAppearedSinceBefore(t *testing.T) {
	stored := &storedKeys{AccessKey: "p0", NonPrimary: []keyRecord{{AccessKey: "n0"}}}
	after := []sigsci.KeySet{
		{AccessKey: "n0"},                // listed before
		{AccessKey: "p0"},                // listed before (was primary)
		{AccessKey: "x1"},                // new, not primary: made elsewhere
		{AccessKey: "p1", Primary: true}, // new primary
	}
	if fresh := newKeySet(after, []string{"n0", "p0"}, nil); fresh == nil || fresh.AccessKey != "p1" {
		t.Fatalf("fresh = %v", fresh)
	}
	// The set the create answered with is the new one, primary or not
	// (another client may have created one since).
	if fresh := newKeySet(after, []string{"n0", "p0"}, &sigsci.KeySet{AccessKey: "x1", SecretKey: "s"}); fresh == nil || fresh.AccessKey != "x1" {
		t.Fatalf("fresh with the create's answer = %v", fresh)
	}
	if fresh := newKeySet(after[:2], []string{"n0", "p0"}, nil); fresh != nil {
		t.Fatalf("nothing new: fresh %v", fresh)
	}
	if got := untrackedSets(after, stored); !reflect.DeepEqual(got, []string{"x1", "p1"}) {
		t.Fatalf("untracked = %v", got)
	}
}

// twoMounts is two mounts of the engine (two Vault clusters, or two mounts
// of one) that both manage site www of corp acme. interleave, if set, runs
// once inside mount 1's next rotation, just before (or, with afterCreate,
// just after) its create.
type twoMounts struct {
	t           *testing.T
	m1, m2      *testEnv
	interleave  func()
	afterCreate bool
}

func newTwoMounts(t *testing.T) *twoMounts {
	tm := &twoMounts{t: t, m1: newTestEnv(t)}
	tm.m2 = tm.m1.secondMount()
	for _, m := range []*testEnv{tm.m1, tm.m2} {
		m.writeRole("vault-user", "acme")
		m.copySite("vault-user", "www")
	}
	tm.m1.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, createHook: func(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
			f, after := tm.interleave, tm.afterCreate
			tm.interleave = nil
			if f != nil && !after {
				f()
			}
			ks, err := c.CreateKeySet(ctx, corp, site)
			if f != nil && after {
				f()
			}
			return ks, err
		}}
	})
	return tm
}

// step runs one operation of mount m and checks the API afterwards: every
// set either mount hands out (its stored primary) is live, and m deleted
// only non-primary sets it had stored itself.
func (tm *twoMounts) step(m *testEnv, what string, op func() *logical.Response) *logical.Response {
	tm.t.Helper()
	before, _ := m.simSets("acme", "www")
	own := m.stored("vault-user", "www")
	resp := op()
	after, _ := m.simSets("acme", "www")
	for _, k := range before {
		if !slices.Contains(after, k) && !slices.Contains(own.nonPrimaryAccessKeys(), k) {
			tm.t.Fatalf("%s deleted key set %s, which it did not store as non-primary (%v)", what, k, own.nonPrimaryAccessKeys())
		}
	}
	for i, other := range []*testEnv{tm.m1, tm.m2} {
		if k := other.stored("vault-user", "www").AccessKey; !slices.Contains(after, k) {
			tm.t.Fatalf("after %s, mount %d hands out %s, which the API no longer has (%v)", what, i+1, k, after)
		}
	}
	return resp
}

func (tm *twoMounts) rotate(m *testEnv, what string) *logical.Response {
	return tm.step(m, what, func() *logical.Response { return m.ok(logical.UpdateOperation, "rotate/sites/www", nil) })
}

func (tm *twoMounts) retire(m *testEnv, what string) *logical.Response {
	return tm.step(m, what, func() *logical.Response {
		m.passOverlap()
		return m.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	})
}

// Two mounts on one corp and site rotate and retire in turn, one of them
// also in the middle of the other's rotation: neither ever deletes a key set
// the other made or hands out, and each reports the other's sets as
// untracked.
func TestRotateTwoMountsOnOneSiteNeverKillEachOthersKeys(t *testing.T) {
	tm := newTwoMounts(t)
	m1, m2 := tm.m1, tm.m2
	shared := m1.stored("vault-user", "www").AccessKey

	// Mount 2 rotates between mount 1's list and its create.
	var fromM2 string
	tm.interleave = func() { fromM2 = str(t, tm.rotate(m2, "mount 2's rotation inside mount 1's"), "accessKey") }
	rot := tm.rotate(m1, "mount 1's rotation")
	fromM1 := str(t, rot, "accessKey")
	if got := stringsField(t, rot.Data, "untracked"); !reflect.DeepEqual(got, []string{fromM2}) {
		t.Fatalf("mount 1's rotation: untracked = %v, want mount 2's %s", got, fromM2)
	}
	if k := m1.stored("vault-user", "www"); k.AccessKey != fromM1 || !reflect.DeepEqual(k.nonPrimaryAccessKeys(), []string{shared}) {
		t.Fatalf("mount 1 stores %v", k)
	}

	// Mount 2 is no longer the API's primary: it cannot retire, it rotates.
	m2.passOverlap()
	m2.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusConflict, "is not the one Vault stores")
	rot = tm.rotate(m2, "mount 2's second rotation")
	if got := stringsField(t, rot.Data, "untracked"); !reflect.DeepEqual(got, []string{fromM1}) {
		t.Fatalf("mount 2's rotation: untracked = %v, want mount 1's %s", got, fromM1)
	}

	// Mount 2 rotates again between mount 1's create and its next list.
	tm.interleave, tm.afterCreate = func() { tm.rotate(m2, "mount 2's rotation after mount 1's create") }, true
	rot = tm.rotate(m1, "mount 1's second rotation")
	if k := m1.stored("vault-user", "www"); k.AccessKey != str(t, rot, "accessKey") || k.tracks(m2.stored("vault-user", "www").AccessKey) {
		t.Fatalf("mount 1 must store the set it created, not mount 2's primary: %v", k)
	}

	// Each retires what it stored itself, and nothing of the other's.
	ret := tm.retire(m2, "mount 2's retirement")
	if got := stringsField(t, ret.Data, "untracked"); !slices.Contains(got, m1.stored("vault-user", "www").AccessKey) {
		t.Fatalf("mount 2's retirement: untracked = %v, want mount 1's primary in it", got)
	}
	tm.rotate(m1, "mount 1's third rotation")
	ret = tm.retire(m1, "mount 1's retirement")
	if got := stringsField(t, ret.Data, "untracked"); !slices.Contains(got, m2.stored("vault-user", "www").AccessKey) {
		t.Fatalf("mount 1's retirement: untracked = %v, want mount 2's primary in it", got)
	}
	if n := len(m1.stored("vault-user", "www").NonPrimary) + len(m2.stored("vault-user", "www").NonPrimary); n != 0 {
		t.Fatalf("after both retired, %d non-primary sets are still stored", n)
	}
}

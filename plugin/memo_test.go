package plugin

import (
	"context"
	"net/http"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// countStorage makes every later request go through a counting storage.
func (e *testEnv) countStorage() *countingStorage {
	c := &countingStorage{Storage: e.storage}
	e.view = c
	return c
}

// A host's read of its keys is the hot path of the engine: once the role and
// the mount config are known, a read costs one storage round trip.
func TestCredsReadCostsOneStorageGetOnceWarm(t *testing.T) {
	e := newStoredSite(t)
	counted := e.countStorage()
	e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil) // warm-up
	before := counted.gets.Load()
	const reads = 10
	for range reads {
		e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil)
	}
	if got := counted.gets.Load() - before; got != reads {
		t.Fatalf("%d creds reads cost %d storage Gets, want %d", reads, got, reads)
	}
}

// Another node (the active one, or a primary cluster) changed the config and
// the role in storage; Vault tells this node through Invalidate.
func TestCredsInvalidateShowsAnotherNodesWrite(t *testing.T) {
	e := newStoredSite(t)
	e.countStorage()
	e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil) // warm-up

	cfg := &mountConfig{RefreshInterval: 600 * secondsToDuration(1)}
	entry, err := logical.StorageEntryJSON(configStorageKey, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.storage.Put(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
	e.b.InvalidateKey(context.Background(), configStorageKey)
	if got := e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil).Data["rotation_period"]; got != 600 {
		t.Fatalf("after the config changed elsewhere: rotation_period = %v, want 600", got)
	}

	if err := e.storage.Delete(context.Background(), rolePrefix+"vault-user"); err != nil {
		t.Fatal(err)
	}
	e.b.InvalidateKey(context.Background(), rolePrefix+"vault-user")
	e.fails(logical.ReadOperation, "creds/vault-user/sites/www", nil, http.StatusNotFound, `role "vault-user" does not exist`)
}

// Writes through this node's API change what the next read sees at once.
func TestCredsReadSeesRoleAndConfigWrittenThroughTheAPI(t *testing.T) {
	e := newStoredSite(t)
	e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil) // warm-up

	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": "2m"})
	if got := e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil).Data["rotation_period"]; got != 120 {
		t.Fatalf("after a config write: rotation_period = %v, want 120", got)
	}
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"email": "new@acme.example"})
	if got := e.ok(logical.ReadOperation, "role/vault-user", nil).Data["email"]; got != "new@acme.example" {
		t.Fatalf("after a role write: email = %v", got)
	}
	e.ok(logical.DeleteOperation, "role/vault-user", map[string]interface{}{"force": true})
	e.fails(logical.ReadOperation, "creds/vault-user/sites/www", nil, http.StatusNotFound, `role "vault-user" does not exist`)
}

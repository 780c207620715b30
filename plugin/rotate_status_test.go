package plugin

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func TestRotateReadShowsPrimaryDemotedScheduleAndFleet(t *testing.T) {
	e, first := fleetEnv(t)
	e.copySite("vault-user", "api")
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"rotation_schedule": "0 3 * * *"})
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.clock.Add(time.Minute)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	k := e.stored("vault-user", "www")
	second := k.NonPrimary[1].AccessKey
	e.report("vault-user", "www", "web-1", second)

	status := e.ok(logical.ReadOperation, "rotate/sites/www", nil).Data
	fleet := status["fleet"].(map[string]interface{})
	if fleet["retire_allowed"] != false || !reflect.DeepEqual(fleet["on_old_keys"], map[string]string{"web-1": second}) {
		t.Fatalf("fleet = %v", fleet)
	}
	delete(status, "fleet")
	want := map[string]interface{}{
		"role":                "vault-user",
		"site":                "www",
		"corp":                "acme",
		"primary_access_key":  k.AccessKey,
		"primary_since":       "2026-12-01T10:01:00Z",
		"last_vault_rotation": "2026-12-01T10:01:00Z",
		"demoted": []map[string]interface{}{
			{"access_key": first, "demoted_at": "2026-12-01T10:00:00Z"},
			{"access_key": second, "demoted_at": "2026-12-01T10:01:00Z"},
		},
		"rotation_schedule":  "0 3 * * *",
		"auto_retire":        true,
		"pending_operations": []map[string]interface{}{},
		// www is site 1 of 2 (api, www): it starts 15m into the 1h window.
		"next_rotation":       "2026-12-02T03:15:00Z",
		"rotation_waiting":    "the next scheduled rotation waits until the non-primary key sets (" + first + ", " + second + ") are retired",
		"auto_retire_waiting": fleet["retire_blocked_by"],
	}
	if !reflect.DeepEqual(status, want) {
		t.Fatalf("rotate read\n got %v\nwant %v", status, want)
	}
	raw, _ := json.Marshal(status)
	if strings.Contains(string(raw), k.SecretKey) {
		t.Fatal("the rotate read holds the secret key")
	}
}

func TestRotateReadShowsPendingOperations(t *testing.T) {
	e, primary := fleetEnv(t)
	op := walOp{OpID: "op-1", Role: "vault-user", Corp: "acme", Site: "www", Before: []string{primary}}
	if _, err := framework.PutWAL(context.Background(), e.storage, walKindRotate, &op); err != nil {
		t.Fatal(err)
	}
	other := walOp{OpID: "op-2", Role: "vault-user", Corp: "acme", Site: "api", Primary: primary}
	if _, err := framework.PutWAL(context.Background(), e.storage, walKindRetire, &other); err != nil {
		t.Fatal(err)
	}
	pending := e.ok(logical.ReadOperation, "rotate/sites/www", nil).Data["pending_operations"].([]map[string]interface{})
	if len(pending) != 1 || pending[0]["operation"] != "rotate" || pending[0]["role"] != "vault-user" {
		t.Fatalf("pending_operations = %v", pending)
	}
	started, err := time.Parse(time.RFC3339, pending[0]["started"].(string))
	if err != nil || time.Since(started) > time.Hour || time.Until(started) > time.Minute {
		t.Fatalf("pending started %v (%v)", pending[0]["started"], err)
	}
	if e.walCount() != 2 {
		t.Fatal("a read changed the WAL")
	}
}

// rotate/<role>/sites/<site> does what rotate/sites/<site> does, for one
// role, so that ACLs can be limited to it.
func TestRotateRoleScopedPath(t *testing.T) {
	e, first := fleetEnv(t)
	e.writeRole("second", "acme")
	e.copySite("second", "www")

	rot := e.ok(logical.UpdateOperation, "rotate/vault-user/sites/www", nil)
	if str(t, rot, "role") != "vault-user" || str(t, rot, "accessKey") == first {
		t.Fatalf("role-scoped rotate answered %v", rot.Data)
	}
	if e.stored("second", "www").AccessKey != first {
		t.Fatal("rotating for one role changed another role's stored keys")
	}
	status := e.ok(logical.ReadOperation, "rotate/vault-user/sites/www", nil).Data
	if status["role"] != "vault-user" || status["primary_access_key"] != str(t, rot, "accessKey") {
		t.Fatalf("role-scoped read: %v", status)
	}
	// The unscoped path needs role= now that two roles hold www.
	e.fails(logical.ReadOperation, "rotate/sites/www", nil, http.StatusBadRequest, `site "www" is held by several roles (second, vault-user)`)
	if got := e.ok(logical.ReadOperation, "rotate/sites/www", map[string]interface{}{"role": "vault-user"}).Data["primary_access_key"]; got != status["primary_access_key"] {
		t.Fatalf("unscoped read with role=: %v", got)
	}

	for _, op := range []logical.Operation{logical.ReadOperation, logical.UpdateOperation, logical.DeleteOperation} {
		e.fails(op, "rotate/nobody/sites/www", nil, http.StatusNotFound, `role "nobody" does not exist`)
		e.fails(op, "rotate/vault-user/sites/api", nil, http.StatusNotFound, `role "vault-user" holds no keys for site "api"`)
		e.fails(op, "rotate/vault-user/sites/WWW", nil, http.StatusBadRequest, `site name "WWW" is invalid`)
	}
	// Retiring for one role would delete the key the other one hands out.
	e.passOverlap()
	e.fails(logical.DeleteOperation, "rotate/vault-user/sites/www", nil, http.StatusConflict, `role "second" still hands out key set `+first)
	e.copySite("second", "www")
	if got := e.ok(logical.DeleteOperation, "rotate/vault-user/sites/www", nil).Data["retired"]; !reflect.DeepEqual(got, []string{first}) {
		t.Fatalf("role-scoped retire retired %v", got)
	}
}

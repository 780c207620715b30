package plugin

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// passOverlap moves the clock past retire_min_overlap, so that a site none
// of whose hosts report may be retired.
func (e *testEnv) passOverlap() {
	e.t.Helper()
	cfg, err := e.b.loadConfig(context.Background(), e.storage)
	if err != nil {
		e.t.Fatal(err)
	}
	e.clock.Add(cfg.retireMinOverlap() + time.Second)
}

// report writes a host's report of the access key its agent runs.
func (e *testEnv) report(role, site, host, accessKey string) *logical.Response {
	e.t.Helper()
	return e.ok(logical.UpdateOperation, "fleet/"+role+"/sites/"+site+"/hosts/"+host,
		map[string]interface{}{"access_key": accessKey})
}

// tick is one tick of Vault's rollback manager: it runs the backend's
// PeriodicFunc (and WAL rollback) and waits for the background pass.
func (e *testEnv) tick() {
	e.t.Helper()
	req := &logical.Request{Operation: logical.RollbackOperation, Storage: e.storage, MountPoint: "sigsci/"}
	if _, err := e.b.HandleRequest(context.Background(), req); err != nil {
		e.t.Fatalf("rollback: %v", err)
	}
	e.b.auto.wg.Wait()
}

// fleetSummary reads fleet/<role>/sites/<site>.
func (e *testEnv) fleetSummary(role, site string) map[string]interface{} {
	e.t.Helper()
	return e.ok(logical.ReadOperation, "fleet/"+role+"/sites/"+site, nil).Data
}

// strings returns a []string field of a response.
func stringsField(t *testing.T, data map[string]interface{}, key string) []string {
	t.Helper()
	v, ok := data[key].([]string)
	if !ok {
		t.Fatalf("field %q: want []string, got %T (%v)", key, data[key], data[key])
	}
	return v
}

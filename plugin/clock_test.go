package plugin

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// fakeClock is the backend's clock in tests: it moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(start time.Time) *fakeClock { return &fakeClock{now: start} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

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

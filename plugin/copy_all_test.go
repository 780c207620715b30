package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/internal/poll"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// bulkCorp gives corp acme n more sites (bulk00, bulk01, ...) besides its three.
func (e *testEnv) bulkCorp(n int) {
	for i := range n {
		e.sim.AddSite("acme", sigscisim.SiteSeed{Name: fmt.Sprintf("bulk%02d", i)})
	}
}

// slowCopy sets the API up so that a copy of all sites takes well over
// 300ms: one call at a time, 40ms each.
func (e *testEnv) slowCopy() {
	e.t.Helper()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"copy_max_concurrency": 1})
	e.sim.SetLatency(40 * time.Millisecond)
	e.t.Cleanup(func() { e.sim.SetLatency(0) })
}

// copyAllWithin sends "write creds/<role>/sites/" with a request deadline, as
// Vault's max_request_duration sets one.
func (e *testEnv) copyAllWithin(role string, deadline time.Duration) *logical.Response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	resp, err := e.doCtx(ctx, logical.UpdateOperation, "creds/"+role+"/sites/", nil)
	if err != nil || resp.IsError() {
		e.t.Fatalf("copy all within %s: err=%v resp=%v", deadline, err, respError(resp))
	}
	return resp
}

// copyStatus is the "copy" part of the all-sites read.
func (e *testEnv) copyStatus(role string) map[string]interface{} {
	e.t.Helper()
	st, ok := e.ok(logical.ReadOperation, "creds/"+role+"/sites/", nil).Data["copy"].(map[string]interface{})
	if !ok {
		e.t.Fatal("the all-sites read shows no copy")
	}
	return st
}

// awaitCopy waits until the role's copy is no longer running and returns its status.
func (e *testEnv) awaitCopy(role string) map[string]interface{} {
	e.t.Helper()
	var st map[string]interface{}
	poll.Within(e.t, 10*time.Second, 5*time.Millisecond, "the copy of all sites to end", func() (bool, string) {
		st = e.copyStatus(role)
		return st["state"] != copyRunning, fmt.Sprintf("copy status %v", st)
	})
	return st
}

// copyClientOf is the API client a copy of the role's sites uses.
func (e *testEnv) copyClientOf(role string, ceiling int) cachedClient {
	e.t.Helper()
	r, err := e.b.loadRole(context.Background(), e.storage, role)
	if err != nil || r == nil {
		e.t.Fatalf("role %s: %v", role, err)
	}
	c, err := e.b.copyClient(role, r, ceiling)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// contextStorage honours the caller's context as Vault's storage does over
// gRPC: a call under an expired context fails.
type contextStorage struct{ logical.Storage }

func (c contextStorage) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.Storage.List(ctx, prefix)
}

func (c contextStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.Storage.Get(ctx, key)
}

func (c contextStorage) Put(ctx context.Context, entry *logical.StorageEntry) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Storage.Put(ctx, entry)
}

// siteOrderAPI records the order in which sites' keys are asked for.
type siteOrderAPI struct {
	keysAPI
	mu    sync.Mutex
	sites []string
}

func (a *siteOrderAPI) PrimaryKeys(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
	a.mu.Lock()
	a.sites = append(a.sites, site)
	a.mu.Unlock()
	return a.keysAPI.PrimaryKeys(ctx, corp, site)
}

// A corp too large to copy within one request: the command answers before
// Vault's deadline with what is done so far, and the copy goes on.
func TestCopyAllAnswersBeforeTheDeadlineAndFinishesInTheBackground(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.bulkCorp(12)
	e.slowCopy()
	e.view = contextStorage{e.storage}

	resp := e.copyAllWithin("vault-user", 300*time.Millisecond)
	if resp.Data["state"] != copyRunning {
		t.Fatalf("state = %v, want running (15 sites at 40ms one at a time cannot be done in 300ms)", resp.Data["state"])
	}
	done, left := resp.Data["done"].(int), resp.Data["left"].(int)
	if resp.Data["total"] != 15 || left < 1 || done+left+len(resp.Data["failed"].(map[string]interface{})) != 15 {
		t.Fatalf("total %v, done %d, left %d", resp.Data["total"], done, left)
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "continues in the background") ||
		!strings.Contains(resp.Warnings[0], "vault read sigsci/creds/vault-user/sites/") {
		t.Fatalf("warnings = %v", resp.Warnings)
	}

	st := e.awaitCopy("vault-user")
	want := map[string]interface{}{
		"state": copyFinished, "total": 15, "done": 15, "left": 0, "failed": map[string]interface{}{},
		"started": "2026-12-01T10:00:00Z", "finished": "2026-12-01T10:00:00Z",
	}
	if !reflect.DeepEqual(st, want) {
		t.Fatalf("status %v, want %v", st, want)
	}
	if keys := e.ok(logical.ListOperation, "creds/vault-user/sites/", nil).Data["keys"].([]string); len(keys) != 15 {
		t.Fatalf("%d sites stored, want 15", len(keys))
	}
}

func TestCopyAllRerunWhileRunningReportsThatCopy(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.bulkCorp(12)
	e.slowCopy()

	first := e.copyAllWithin("vault-user", 300*time.Millisecond)
	e.clock.Add(time.Minute)
	again := e.copyAllWithin("vault-user", 300*time.Millisecond)
	if again.Data["state"] != copyRunning || again.Data["started"] != first.Data["started"] {
		t.Fatalf("re-run: state %v started %v, want the running copy started %v", again.Data["state"], again.Data["started"], first.Data["started"])
	}
	if !strings.Contains(strings.Join(again.Warnings, "\n"), "no second copy was started") {
		t.Fatalf("warnings = %v", again.Warnings)
	}
	e.awaitCopy("vault-user")
	if lists, reads := e.sim.Calls(sigscisim.EndpointListSites), e.sim.Calls(sigscisim.EndpointPrimaryKeys); lists != 1 || reads != 15 {
		t.Fatalf("%d site lists and %d key reads, want 1 and 15: a second copy ran", lists, reads)
	}
}

func TestCopyAllRerunRetriesWhatFailedFirst(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"copy_max_concurrency": 1})
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, primaryErr: map[string]error{
			"shop": &sigsci.APIError{Method: "GET", Path: "/corps/acme/sites/shop/keys", StatusCode: 500, Message: "boom"},
		}}
	})
	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites/", nil)
	if failed := resp.Data["failed"].(map[string]interface{}); len(failed) != 1 || failed["shop"] == nil {
		t.Fatalf("failed = %v", failed)
	}
	if st := e.copyStatus("vault-user"); st["state"] != copyFinished || st["left"] != 0 || len(st["failed"].(map[string]interface{})) != 1 {
		t.Fatalf("status after a partial failure: %v", st)
	}

	for _, restart := range []bool{false, true} {
		if restart { // the record of the last copy outlives the node that ran it
			e.ok(logical.DeleteOperation, "creds/vault-user/sites/shop", nil)
			e.wrapAPI(func(c keysAPI) keysAPI {
				return &faultyAPI{keysAPI: c, primaryErr: map[string]error{
					"shop": &sigsci.APIError{Method: "GET", Path: "/corps/acme/sites/shop/keys", StatusCode: 500, Message: "boom"},
				}}
			})
			e.ok(logical.UpdateOperation, "creds/vault-user/sites/", nil)
			e.restart()
		}
		order := &siteOrderAPI{}
		e.wrapAPI(func(c keysAPI) keysAPI { order.keysAPI = c; return order })
		resp = e.ok(logical.UpdateOperation, "creds/vault-user/sites/", nil)
		if len(order.sites) != 3 || order.sites[0] != "shop" {
			t.Fatalf("restart=%v: sites asked for in the order %v, want shop (the failed one) first", restart, order.sites)
		}
		if len(resp.Data["failed"].(map[string]interface{})) != 0 || e.stored("vault-user", "shop") == nil {
			t.Fatalf("restart=%v: the retry did not store shop: %v", restart, resp.Data["failed"])
		}
	}

	e.ok(logical.DeleteOperation, "role/vault-user", map[string]interface{}{"force": true})
	for key := range e.storageSnapshot() {
		if strings.HasPrefix(key, copyRecordPrefix) {
			t.Fatalf("the record %s of a deleted role's copy is still stored", key)
		}
	}
}

func TestCopyAllCleanStopsTheBackgroundCopy(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.bulkCorp(12)
	e.slowCopy()
	e.copyAllWithin("vault-user", 300*time.Millisecond)
	job := e.b.runningCopy("vault-user")
	if job == nil {
		t.Fatal("no copy runs after the answer")
	}

	e.restart()
	select {
	case <-job.done:
	default:
		t.Fatal("Clean returned while the copy still runs")
	}
	st := e.copyStatus("vault-user")
	if st["state"] != copyStopped || st["left"].(int) < 1 || !strings.Contains(st["stopped"].(string), "run the copy again") {
		t.Fatalf("status after Clean: %v", st)
	}
}

// A copy whose node went away without Clean (kill -9, power loss) left its
// record saying it runs; the next active node knows better.
func TestCopyAllACopyNoNodeRunsIsInterrupted(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	rec := copyRecord{State: copyRunning, Started: e.clock.Now(), Total: 3}
	entry, err := logical.StorageEntryJSON(copyRecordKey("vault-user"), rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.storage.Put(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
	if st := e.copyStatus("vault-user"); st["state"] != copyInterrupted || st["left"] != 3 {
		t.Fatalf("status of an orphaned record: %v", st)
	}
	e.b.System().(*logical.StaticSystemView).ReplicationStateVal = consts.ReplicationPerformanceStandby
	if st := e.copyStatus("vault-user"); st["state"] != copyRunning {
		t.Fatalf("a performance standby, which cannot know, shows %v", st["state"])
	}
}

// Where writes are not safe (a performance standby, a secondary) no copy
// runs: the request is refused as read-only, which makes Vault forward it.
func TestCopyAllRunsOnlyWhereWritesAreSafe(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	sys := e.b.System().(*logical.StaticSystemView)
	for _, state := range []consts.ReplicationState{consts.ReplicationPerformanceStandby, consts.ReplicationPerformanceSecondary, consts.ReplicationDRSecondary} {
		sys.ReplicationStateVal = state
		if _, err := e.do(logical.UpdateOperation, "creds/vault-user/sites/", nil); !errors.Is(err, logical.ErrReadOnly) {
			t.Fatalf("replication state %v: err = %v, want read-only", state, err)
		}
		if e.b.runningCopy("vault-user") != nil || e.sim.Calls(sigscisim.EndpointListSites) != 0 {
			t.Fatalf("replication state %v: a copy started", state)
		}
	}
}

// copyAllFortySites copies every site of a bulkCorp(37) role vault-user
// with copy_max_concurrency window, the API taking latency per call, and
// checks that all 40 were copied.
func (e *testEnv) copyAllFortySites(window int, latency time.Duration) {
	e.t.Helper()
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"copy_max_concurrency": window})
	e.sim.SetLatency(latency)
	e.t.Cleanup(func() { e.sim.SetLatency(0) })

	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
	if copied := resp.Data["copied"].([]string); len(copied) != 40 {
		e.t.Fatalf("copied %d sites, want 40", len(copied))
	}
}

// roleOnOwnServer serves the simulator on a server of the test's own, with
// handler wrapped and server set up by setUp, and writes role vault-user
// for corp acme against it.
func (e *testEnv) roleOnOwnServer(wrap func(http.Handler) http.Handler, setUp func(*httptest.Server)) {
	e.t.Helper()
	srv := httptest.NewUnstartedServer(wrap(e.sim))
	setUp(srv)
	srv.Start()
	e.t.Cleanup(srv.Close)
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{
		"corp": "acme", "email": acmeEmail, "token": acmeToken, "api_url": srv.URL + sigscisim.APIPrefix,
	})
}

// The API sees at most copy_max_concurrency calls of a copy at once.
func TestCopyAllConcurrencyIsBoundedByTheMountConfig(t *testing.T) {
	e := newTestEnv(t)
	e.bulkCorp(37) // 40 sites
	gauge := &concurrencyGauge{}
	e.roleOnOwnServer(func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gauge.enter()
			defer gauge.leave()
			h.ServeHTTP(w, r)
		})
	}, func(*httptest.Server) {})
	e.copyAllFortySites(3, 20*time.Millisecond)
	if peak := gauge.peak(); peak > 3 || peak < 2 {
		t.Fatalf("peak concurrent API calls %d, want 2..3", peak)
	}
}

// A copy keeps its connections to the API open for the next call instead of
// opening one per call.
func TestCopyAllReusesItsConnections(t *testing.T) {
	e := newTestEnv(t)
	e.bulkCorp(37) // 40 sites
	var dialed atomic.Int32
	e.roleOnOwnServer(func(h http.Handler) http.Handler { return h }, func(srv *httptest.Server) {
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				dialed.Add(1)
			}
		}
	})
	e.copyAllFortySites(8, 5*time.Millisecond)
	// One more than the window: a connection goes back to the pool just
	// after its call's answer is closed, and a call starting in between
	// dials.
	if n := dialed.Load(); n > 9 {
		t.Fatalf("41 calls at most 8 at a time opened %d connections, want at most 9", n)
	}
	if kept := e.copyClientOf("vault-user", 8).transport.base.(*http.Transport).MaxIdleConnsPerHost; kept != 8 {
		t.Fatalf("the copy's transport keeps %d idle connections per host, want copy_max_concurrency (8)", kept)
	}
}

// Under the API's rate limit the copy slows down instead of failing sites,
// and its window of calls in flight shrinks below the ceiling.
func TestCopyAllBacksOffWhenTheAPIRateLimits(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.bulkCorp(37) // 40 sites
	e.sim.SetRateLimit(15)
	e.sim.SetRetryAfter(1)

	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
	if copied := resp.Data["copied"].([]string); len(copied) != 40 {
		t.Fatalf("copied %d of 40 under a rate limit; failed: %v", len(copied), resp.Data["failed"])
	}
	if reads := e.sim.Calls(sigscisim.EndpointPrimaryKeys); reads <= 40 {
		t.Fatalf("%d key reads: the rate limit never bit, the test proves nothing", reads)
	}
	l := e.copyClientOf("vault-user", defaultCopyMaxConcurrency).limit
	l.mu.Lock()
	cut, window := !l.cutAt.IsZero(), l.window
	l.mu.Unlock()
	if !cut || window >= defaultCopyMaxConcurrency {
		t.Fatalf("after rate limiting: window cut %v, window %.2f", cut, window)
	}
}

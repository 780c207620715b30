package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/locksutil"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

func TestCredsCopyReadDelete(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	e.clock.Set(clock)

	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites/www", nil)
	if got := str(t, resp, "status"); got != "copied" {
		t.Fatalf("first copy: status %q", got)
	}
	if _, ok := resp.Data["secretKey"]; ok {
		t.Fatal("the copy answer carries the secret")
	}

	sets := e.sim.KeySets("acme", "www")
	if len(sets) != 1 || !sets[0].Primary {
		t.Fatalf("simulator sets: %v", sets)
	}
	read := e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil)
	if read.Secret != nil || read.Auth != nil {
		t.Fatal("a creds read must be plain data without a lease")
	}
	if str(t, read, "accessKey") != sets[0].AccessKey || str(t, read, "secretKey") != sets[0].SecretKey {
		t.Fatal("read keys differ from the API's primary set")
	}
	for k, want := range map[string]string{
		"site": "www", "corp": "acme", "created": "2030-01-02T03:04:05Z",
	} {
		if got := str(t, read, k); got != want {
			t.Fatalf("%s = %q, want %q", k, got, want)
		}
	}
	if v, ok := read.Data["last_vault_rotation"]; ok {
		t.Fatalf("last_vault_rotation = %q before any rotation, want it left out", v)
	}
	if got := read.Data["non_primary_access_keys"]; !reflect.DeepEqual(got, []string{}) {
		t.Fatalf("non_primary_access_keys = %#v", got)
	}

	again := e.ok(logical.UpdateOperation, "creds/vault-user/sites/www", nil)
	if got := str(t, again, "status"); got != "unchanged" {
		t.Fatalf("second copy: status %q", got)
	}

	e.ok(logical.DeleteOperation, "creds/vault-user/sites/www", nil)
	e.fails(logical.ReadOperation, "creds/vault-user/sites/www", nil, http.StatusNotFound,
		`no keys stored for site "www" under role "vault-user"; copy them with: vault write -f sigsci/creds/vault-user/sites/www`)
	if got := e.sim.KeySets("acme", "www"); len(got) != 1 || got[0].AccessKey != sets[0].AccessKey {
		t.Fatal("deleting stored keys touched the API")
	}
	e.fails(logical.DeleteOperation, "creds/vault-user/sites/www", nil, http.StatusNotFound, "no keys stored")
}

func TestCredsRefreshHints(t *testing.T) {
	e := newStoredSite(t)

	check := func(period int) {
		t.Helper()
		for range 20 {
			resp := e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil)
			gotPeriod, ok1 := resp.Data["rotation_period"].(int)
			ttl, ok2 := resp.Data["ttl"].(int)
			if !ok1 || !ok2 {
				t.Fatalf("rotation_period/ttl must be ints, got %T %T", resp.Data["rotation_period"], resp.Data["ttl"])
			}
			if gotPeriod != period || ttl < period-period/10 || ttl > period || ttl < 1 {
				t.Fatalf("rotation_period=%d ttl=%d for an interval of %ds", gotPeriod, ttl, period)
			}
			// consul-template needs JSON numbers, never strings.
			raw, _ := json.Marshal(resp.Data)
			if !regexp.MustCompile(`"ttl":[1-9][0-9]*[,}]`).Match(raw) {
				t.Fatalf("ttl is not a positive JSON number: %s", raw)
			}
		}
	}
	check(60)
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": "5s"})
	check(5)
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"refresh_interval": "10m"})
	check(600)
}

func TestCredsUnknownRoleAndBadSite(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	for _, tc := range []struct {
		op   logical.Operation
		path string
	}{
		{logical.ReadOperation, "creds/nobody/sites/www"},
		{logical.UpdateOperation, "creds/nobody/sites/www"},
		{logical.DeleteOperation, "creds/nobody/sites/www"},
		{logical.ReadOperation, "creds/nobody/sites"},
		{logical.ListOperation, "creds/nobody/sites/"},
		{logical.UpdateOperation, "creds/nobody/sites"},
	} {
		e.fails(tc.op, tc.path, nil, http.StatusNotFound, `role "nobody" does not exist`)
	}
	before := e.storageSnapshot()
	for _, site := range []string{"WWW", "w%20w", strings.Repeat("s", 101)} {
		for _, op := range []logical.Operation{logical.ReadOperation, logical.UpdateOperation, logical.DeleteOperation} {
			e.fails(op, "creds/vault-user/sites/"+site, nil, http.StatusBadRequest, "is invalid")
		}
	}
	e.fails(logical.UpdateOperation, "creds/bad role/sites/www", nil, http.StatusBadRequest, "role name")
	e.assertStorageUnchanged(before)
}

func TestCredsCopyUnknownSiteAtAPI(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	before := e.storageSnapshot()
	e.fails(logical.UpdateOperation, "creds/vault-user/sites/nosuch", nil, http.StatusNotFound, `site "nosuch"`)
	e.assertStorageUnchanged(before)
}

func TestCredsCopyAllReadAllList(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www") // already stored: "unchanged"

	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
	if got := resp.Data["copied"]; !reflect.DeepEqual(got, []string{"api", "shop"}) {
		t.Fatalf("copied = %v", got)
	}
	if got := resp.Data["unchanged"]; !reflect.DeepEqual(got, []string{"www"}) {
		t.Fatalf("unchanged = %v", got)
	}
	if got := resp.Data["failed"]; !reflect.DeepEqual(got, map[string]interface{}{}) {
		t.Fatalf("failed = %v", got)
	}
	if resp.Data["total"] != 3 || len(resp.Warnings) != 0 {
		t.Fatalf("total=%v warnings=%v", resp.Data["total"], resp.Warnings)
	}

	for _, path := range []string{"creds/vault-user/sites", "creds/vault-user/sites/"} {
		all := e.ok(logical.ReadOperation, path, nil)
		if got := all.Data["keys"]; !reflect.DeepEqual(got, []string{"api", "shop", "www"}) {
			t.Fatalf("read %s: keys = %v", path, got)
		}
		sites := all.Data["sites"].(map[string]interface{})
		for _, site := range []string{"api", "shop", "www"} {
			one := sites[site].(map[string]interface{})
			live := e.sim.KeySets("acme", site)
			if one["accessKey"] != live[0].AccessKey || one["site"] != site || one["created"] == nil {
				t.Fatalf("read all: site %s: access key %v, site %v, created %v", site, one["accessKey"], one["site"], one["created"])
			}
		}
		assertNoSecretKey(t, all, e.sim.Secrets())
		if _, ok := all.Data["ttl"].(int); !ok {
			t.Fatalf("read all: ttl %T", all.Data["ttl"])
		}
	}

	list := e.ok(logical.ListOperation, "creds/vault-user/sites/", nil)
	if got := list.Data["keys"]; !reflect.DeepEqual(got, []string{"api", "shop", "www"}) {
		t.Fatalf("list: keys = %v", got)
	}
	if _, ok := list.Data["sites"]; ok {
		t.Fatal("list must not return the keys themselves")
	}
}

func TestCredsCopyAllPartialFailureKeepsSuccessesAndOldKeys(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "shop")
	oldShop := e.stored("vault-user", "shop")

	// The site's primary changes at the API, then reading it fails.
	if _, err := e.acmeAPI().CreateKeySet(context.Background(), "acme", "shop"); err != nil {
		t.Fatal(err)
	}
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{keysAPI: c, primaryErr: map[string]error{
			"shop": &sigsci.APIError{Method: "GET", Path: "/corps/acme/sites/shop/keys", StatusCode: 500, Message: "boom"},
		}}
	})

	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
	if got := resp.Data["copied"]; !reflect.DeepEqual(got, []string{"api", "www"}) {
		t.Fatalf("copied = %v", got)
	}
	failed := resp.Data["failed"].(map[string]interface{})
	if len(failed) != 1 || !strings.Contains(failed["shop"].(string), "500") {
		t.Fatalf("failed = %v", failed)
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "1 of 3 site(s) failed") {
		t.Fatalf("warnings = %v", resp.Warnings)
	}
	now := e.stored("vault-user", "shop")
	if now.AccessKey != oldShop.AccessKey || now.SecretKey != oldShop.SecretKey {
		t.Fatal("a failed copy changed the stored key")
	}
	if e.stored("vault-user", "api") == nil || e.stored("vault-user", "www") == nil {
		t.Fatal("successful sites were not kept")
	}
}

func TestCredsCopyAllRidesOutTransientFaults(t *testing.T) {
	for _, status := range []int{http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusServiceUnavailable} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			e := newTestEnv(t)
			e.writeRole("vault-user", "acme")
			e.sim.FailNext(2, status)
			resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
			if got := resp.Data["copied"]; !reflect.DeepEqual(got, []string{"api", "shop", "www"}) {
				t.Fatalf("copied = %v, failed = %v", got, resp.Data["failed"])
			}
			for _, site := range []string{"api", "shop", "www"} {
				if sets := e.sim.KeySets("acme", site); len(sets) != 1 {
					t.Fatalf("copy changed the sets of %s at the API: %d", site, len(sets))
				}
			}
		})
	}
}

func TestCredsCopyAllListFailureChangesNothing(t *testing.T) {
	e := newStoredSite(t)
	before := e.storageSnapshot()
	e.sim.FailNext(100, http.StatusInternalServerError)
	e.fails(logical.UpdateOperation, "creds/vault-user/sites", nil, http.StatusBadGateway, `listing the sites of corp "acme"`)
	e.assertStorageUnchanged(before)
}

func TestCredsAPIFailureNeverOverwritesAWorkingKey(t *testing.T) {
	e := newStoredSite(t)
	before := e.storageSnapshot()

	e.sim.FailNext(100, http.StatusInternalServerError)
	e.fails(logical.UpdateOperation, "creds/vault-user/sites/www", nil, http.StatusBadGateway, "500")
	e.assertStorageUnchanged(before)
	e.sim.FailNext(0, 0)
	if str(t, e.ok(logical.ReadOperation, "creds/vault-user/sites/www", nil), "secretKey") == "" {
		t.Fatal("stored key lost")
	}
}

// impatientClients makes the API clients the backend builds from now on
// give a call up after two attempts of at most timeout each.
func (e *testEnv) impatientClients(timeout time.Duration) {
	e.tuneClients(func(cfg *sigsci.Config) {
		cfg.Timeout = timeout
		cfg.MaxRetries = 1
	})
}

func TestCredsCopyTimesOut(t *testing.T) {
	e := newStoredSite(t)
	before := e.storageSnapshot()

	e.impatientClients(50 * time.Millisecond)
	e.sim.SetLatency(300 * time.Millisecond)
	start := time.Now()
	resp, err := e.do(logical.UpdateOperation, "creds/vault-user/sites/www", nil)
	status, msg := statusOf(resp, err)
	if status != http.StatusGatewayTimeout && status != http.StatusBadGateway {
		t.Fatalf("timeout: status %d %q", status, msg)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("the copy took %s despite a 50ms per-attempt timeout", elapsed)
	}
	e.sim.SetLatency(0)
	e.assertStorageUnchanged(before)
}

func TestCredsCopyAfterOutsideRotationKeepsOldKey(t *testing.T) {
	e := newStoredSite(t)
	old := e.stored("vault-user", "www")

	if _, err := e.acmeAPI().CreateKeySet(context.Background(), "acme", "www"); err != nil {
		t.Fatal(err)
	}
	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites/www", nil)
	if str(t, resp, "status") != "copied" {
		t.Fatalf("status = %v", resp.Data["status"])
	}
	// The copy stores the new primary and keeps the replaced key as non-primary.
	e.assertSettled("after the copy", settled{nonPrimary: []string{old.AccessKey}})
}

func TestCredsCopyAllReportsSitesGoneFromAPI(t *testing.T) {
	e := newStoredSite(t)
	// A stored site that the API does not list (deleted in the dashboard).
	k := e.stored("vault-user", "www")
	k.Site = "retired-site"
	if err := e.b.putKeys(context.Background(), e.storage, k); err != nil {
		t.Fatal(err)
	}
	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
	if got := resp.Data["not_at_api"]; !reflect.DeepEqual(got, []string{"retired-site"}) {
		t.Fatalf("not_at_api = %v", got)
	}
	if e.stored("vault-user", "retired-site") == nil {
		t.Fatal("a site missing at the API was deleted from Vault")
	}
}

func TestCredsCancelledRequestStoresNothing(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp, err := e.b.HandleRequest(ctx, &logical.Request{
		Operation: logical.UpdateOperation, Path: "creds/vault-user/sites/www", Storage: e.storage,
	})
	if status, _ := statusOf(resp, err); status == http.StatusOK {
		t.Fatal("a cancelled copy succeeded")
	}
	if e.stored("vault-user", "www") != nil {
		t.Fatal("a cancelled copy stored keys")
	}
}

func TestCredsCopyAllWithTimeoutsReportsEverySiteAndKeepsOldKeys(t *testing.T) {
	e := newStoredSite(t)
	before := e.storageSnapshot()

	e.impatientClients(100 * time.Millisecond)
	// The site list arrives; then the API stops answering in time.
	e.wrapAPI(func(c keysAPI) keysAPI { return &slowAfterListAPI{keysAPI: c, sim: e.sim} })
	t.Cleanup(func() { e.sim.SetLatency(0) })

	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
	failed := resp.Data["failed"].(map[string]interface{})
	if len(failed) != 3 || len(resp.Data["copied"].([]string)) != 0 {
		t.Fatalf("copied %v, failed %v", resp.Data["copied"], failed)
	}
	for site, reason := range failed {
		if !strings.Contains(reason.(string), "no answer within") {
			t.Fatalf("site %s failed for %q, want a timeout", site, reason)
		}
	}
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "3 of 3 site(s) failed") {
		t.Fatalf("warnings = %v", resp.Warnings)
	}
	// Only the copy's own record (its state, which sites failed) is new.
	if err := e.storage.Delete(context.Background(), copyRecordKey("vault-user")); err != nil {
		t.Fatal(err)
	}
	e.assertStorageUnchanged(before)
}

// slowAfterListAPI makes the simulator too slow to answer once the site
// list has been read.
type slowAfterListAPI struct {
	keysAPI
	sim *sigscisim.Server
}

func (a *slowAfterListAPI) ListSites(ctx context.Context, corp string) ([]sigsci.Site, error) {
	sites, err := a.keysAPI.ListSites(ctx, corp)
	a.sim.SetLatency(time.Minute)
	return sites, err
}

func TestCredsCopyAllUnderRateLimitHonoursRetryAfter(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	for i := range 12 {
		e.sim.AddSite("acme", sigscisim.SiteSeed{Name: fmt.Sprintf("bulk%02d", i)})
	}
	e.sim.SetRateLimit(10) // 16 calls: the list and 15 sites
	e.sim.SetRetryAfter(1)
	start := time.Now()
	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
	if copied := resp.Data["copied"].([]string); len(copied) != 15 {
		t.Fatalf("copied %d of 15 under a rate limit; failed: %v", len(copied), resp.Data["failed"])
	}
	if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
		t.Fatalf("copy finished in %s: the 429s' Retry-After of 1s was not honoured", elapsed)
	}
	if limited := e.sim.Calls(sigscisim.EndpointPrimaryKeys); limited <= 15 {
		t.Fatalf("%d key reads: the rate limit never bit, the test proves nothing", limited)
	}
}

// A role must not vanish or change corp while a copy stores keys under it: a
// forced delete or a corp change landing between the API's answer and the
// store would leave keys under a deleted role, or one corp's keys under a
// role of another corp. While a copy talks to the API, a role write or
// delete (which takes the role's lock exclusively) has to wait.
func TestCredsCopyHoldsOffRoleWritesWhileItRuns(t *testing.T) {
	for _, path := range []string{"creds/vault-user/sites/www", "creds/vault-user/sites/"} {
		t.Run(path, func(t *testing.T) {
			e := newTestEnv(t)
			e.writeRole("vault-user", "acme")
			roleLock := locksutil.LockForKey(e.b.roleLocks, "vault-user")
			var calls atomic.Int32
			e.wrapAPI(func(c keysAPI) keysAPI {
				return &faultyAPI{keysAPI: c, primaryHook: func() {
					calls.Add(1)
					if roleLock.TryLock() {
						roleLock.Unlock()
						t.Error("a role write could run while a copy was storing keys under the role")
					}
				}}
			})
			e.ok(logical.UpdateOperation, path, nil)
			if calls.Load() == 0 {
				t.Fatal("the copy never asked the API for keys")
			}
			// Once the copy is done the role is free again.
			if !roleLock.TryLock() {
				t.Fatal("the copy left the role locked")
			}
			roleLock.Unlock()
		})
	}
}

// assertNoSecretKey fails if an answer carries a secretKey field or any of
// the given secrets.
func assertNoSecretKey(t *testing.T, resp *logical.Response, secrets []string) {
	t.Helper()
	raw, err := json.Marshal(resp.Data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "secretKey") || strings.Contains(string(raw), "secret_key") {
		t.Fatal("the answer names a secret key field")
	}
	for _, secret := range secrets {
		if secret != "" && strings.Contains(string(raw), secret) {
			t.Fatal("the answer carries a secret")
		}
	}
}

// The all-sites read is a directory: names and metadata of every stored
// site, never a secret key (those come only from the per-site read), so that
// a policy can grant it without granting every secret, and its audit entry
// holds no secret.
func TestCredsReadAllShowsMetadataAndNoSecretKey(t *testing.T) {
	e := newStoredSite(t)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)
	k := e.stored("vault-user", "www")

	all := e.ok(logical.ReadOperation, "creds/vault-user/sites/", nil)
	assertNoSecretKey(t, all, e.sim.Secrets())
	www := all.Data["sites"].(map[string]interface{})["www"].(map[string]interface{})
	if www["accessKey"] != k.AccessKey || www["last_vault_rotation"] == nil {
		t.Fatalf("www: access key %v, last rotation %v; want %s and a time", www["accessKey"], www["last_vault_rotation"], k.AccessKey)
	}
	if got := www["non_primary_access_keys"]; !reflect.DeepEqual(got, k.nonPrimaryAccessKeys()) {
		t.Fatalf("non_primary_access_keys = %v, want %v", got, k.nonPrimaryAccessKeys())
	}
	demoted := www["demoted"].([]map[string]interface{})
	if len(demoted) != 1 || demoted[0]["access_key"] != k.NonPrimary[0].AccessKey || demoted[0]["demoted_at"] == "" {
		t.Fatalf("demoted = %v", demoted)
	}
	if got := all.Data["total"]; got != 3 {
		t.Fatalf("total = %v, want 3", got)
	}
	if _, ok := all.Data["next_after"]; ok {
		t.Fatal("one page holds every site, yet next_after is set")
	}
}

func TestCredsReadAllPages(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	for i := range 4 {
		e.sim.AddSite("acme", sigscisim.SiteSeed{Name: fmt.Sprintf("bulk%d", i)})
	}
	e.ok(logical.UpdateOperation, "creds/vault-user/sites", nil)

	var pages [][]string
	after := ""
	for {
		resp := e.ok(logical.ReadOperation, "creds/vault-user/sites/", map[string]interface{}{"after": after, "limit": 3})
		keys := resp.Data["keys"].([]string)
		if len(resp.Data["sites"].(map[string]interface{})) != len(keys) || resp.Data["total"] != 7 {
			t.Fatalf("page after %q: keys %v, %d sites, total %v", after, keys, len(resp.Data["sites"].(map[string]interface{})), resp.Data["total"])
		}
		pages = append(pages, keys)
		next, more := resp.Data["next_after"].(string)
		if !more {
			break
		}
		if next != keys[len(keys)-1] || len(pages) > 3 {
			t.Fatalf("next_after = %q after page %v", next, keys)
		}
		after = next
	}
	want := [][]string{{"api", "bulk0", "bulk1"}, {"bulk2", "bulk3", "shop"}, {"www"}}
	if !reflect.DeepEqual(pages, want) {
		t.Fatalf("pages = %v, want %v", pages, want)
	}

	for _, tc := range []struct {
		data map[string]interface{}
		want string
	}{
		{map[string]interface{}{"limit": 0}, "limit must be between 1 and 5000"},
		{map[string]interface{}{"limit": 5001}, "limit must be between 1 and 5000"},
		{map[string]interface{}{"after": "Not A Site"}, "after:"},
	} {
		e.fails(logical.ReadOperation, "creds/vault-user/sites/", tc.data, http.StatusBadRequest, tc.want)
	}
}

// A proxy's error page, or an API error with fields besides "message",
// reaches the Vault caller as the API's message only, never as the body.
func TestCredsAPIErrorBodiesAreNotReflected(t *testing.T) {
	e := newTestEnv(t)
	api := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/sites/www/") {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html><body>upstream proxy 10.0.0.7 refused</body></html>")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"message":"corp suspended","internal":"db-host-7","echo":"`+r.Header.Get("x-api-token")+`"}`)
	}))
	e.ok(logical.UpdateOperation, "role/r", map[string]interface{}{
		"corp": "acme", "email": acmeEmail, "token": acmeToken, "api_url": api.URL + sigscisim.APIPrefix,
	})
	html := e.fails(logical.UpdateOperation, "creds/r/sites/www", nil, http.StatusBadGateway, "502 Bad Gateway (the answer carries no JSON message: text/html, ")
	extra := e.fails(logical.UpdateOperation, "creds/r/sites/api", nil, http.StatusBadGateway, "403 Forbidden: corp suspended")
	for _, msg := range []string{html, extra} {
		if containsAny(msg, "upstream proxy", "10.0.0.7", "<html>", "db-host-7", "internal", acmeToken) {
			t.Errorf("the answer reflects the API's body: %s", msg)
		}
	}
}

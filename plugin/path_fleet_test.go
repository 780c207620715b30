package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

const hostPath = "fleet/vault-user/sites/www/hosts/"

// fleetEnv is a mount with one stored site, www, of role vault-user.
func fleetEnv(t *testing.T) (*testEnv, string) {
	t.Helper()
	e := newStoredSite(t)
	return e, e.stored("vault-user", "www").AccessKey
}

// The report hostd writes and the answers to it, field by field: the
// hostd side is built against these shapes.
func TestFleetHostReportWriteReadListDelete(t *testing.T) {
	e, primary := fleetEnv(t)
	resp := e.ok(logical.UpdateOperation, hostPath+"web-1.example.com", map[string]interface{}{
		"access_key":    primary,
		"unit":          "sigsci-agent.service",
		"agent_started": "2026-12-01T09:58:00+01:00",
		"version":       "v0.3.0",
	})
	want := map[string]interface{}{
		"host":        "web-1.example.com",
		"access_key":  primary,
		"on_primary":  true,
		"reported_at": "2026-12-01T10:00:00Z",
	}
	if !reflect.DeepEqual(resp.Data, want) {
		t.Fatalf("report answer %v, want %v", resp.Data, want)
	}

	e.clock.Add(time.Minute)
	read := e.ok(logical.ReadOperation, hostPath+"web-1.example.com", nil)
	want = map[string]interface{}{
		"role":          "vault-user",
		"site":          "www",
		"host":          "web-1.example.com",
		"access_key":    primary,
		"on_primary":    true,
		"reported_at":   "2026-12-01T10:00:00Z",
		"stale":         false,
		"unit":          "sigsci-agent.service",
		"agent_started": "2026-12-01T08:58:00Z",
		"version":       "v0.3.0",
	}
	if !reflect.DeepEqual(read.Data, want) {
		t.Fatalf("report read %v, want %v", read.Data, want)
	}

	// A report replaces the host's last one; fields left out are gone.
	e.report("vault-user", "www", "web-1.example.com", primary)
	read = e.ok(logical.ReadOperation, hostPath+"web-1.example.com", nil)
	if read.Data["reported_at"] != "2026-12-01T10:01:00Z" || read.Data["unit"] != "" || read.Data["agent_started"] != nil {
		t.Fatalf("second report read %v", read.Data)
	}

	e.report("vault-user", "www", "web-2", primary)
	for _, path := range []string{hostPath, strings.TrimSuffix(hostPath, "/")} {
		if got := e.ok(logical.ListOperation, path, nil).Data["keys"]; !reflect.DeepEqual(got, []string{"web-1.example.com", "web-2"}) {
			t.Fatalf("list %s = %v", path, got)
		}
	}

	e.ok(logical.DeleteOperation, hostPath+"web-2", nil)
	e.fails(logical.ReadOperation, hostPath+"web-2", nil, http.StatusNotFound, `host "web-2" has no report for site "www"`)
	e.ok(logical.DeleteOperation, hostPath+"web-2", nil) // already gone: fine
	if got := e.ok(logical.ListOperation, hostPath, nil).Data["keys"]; !reflect.DeepEqual(got, []string{"web-1.example.com"}) {
		t.Fatalf("list after delete = %v", got)
	}
}

func TestFleetReportValidation(t *testing.T) {
	e, primary := fleetEnv(t)
	e.writeRole("empty", "acme")
	before := e.storageSnapshot()
	ok := map[string]interface{}{"access_key": primary}
	with := func(k string, v interface{}) map[string]interface{} {
		return map[string]interface{}{"access_key": primary, k: v}
	}
	for _, tc := range []struct {
		path   string
		data   map[string]interface{}
		status int
		want   string
	}{
		{hostPath + "web 1", ok, http.StatusBadRequest, `host name "web 1" is invalid`},
		{hostPath + "web_1!", ok, http.StatusBadRequest, `host name "web_1!" is invalid`},
		{hostPath + "..", ok, http.StatusBadRequest, `host name ".." is invalid`},
		{hostPath + strings.Repeat("a", 254), ok, http.StatusBadRequest, "host name is longer than 253 characters"},
		{hostPath + "web-1", nil, http.StatusBadRequest, "access_key is required"},
		{hostPath + "web-1", with("access_key", "  "), http.StatusBadRequest, "access_key is required"},
		{hostPath + "web-1", with("access_key", "a b"), http.StatusBadRequest, "printable characters without spaces (value not shown)"},
		{hostPath + "web-1", with("access_key", strings.Repeat("k", 129)), http.StatusBadRequest, "at most 128"},
		{hostPath + "web-1", with("unit", "sigsci agent"), http.StatusBadRequest, `unit "sigsci agent" is not a systemd unit name`},
		{hostPath + "web-1", with("agent_started", "yesterday"), http.StatusBadRequest, `agent_started "yesterday" is not an RFC 3339 time`},
		{hostPath + "web-1", with("version", strings.Repeat("v", 65)), http.StatusBadRequest, "version must be at most 64"},
		{"fleet/vault-user/sites/WWW/hosts/web-1", ok, http.StatusBadRequest, `site name "WWW" is invalid`},
		{"fleet/nobody/sites/www/hosts/web-1", ok, http.StatusNotFound, `role "nobody" does not exist`},
		{"fleet/empty/sites/www/hosts/web-1", ok, http.StatusNotFound, `role "empty" holds no keys for site "www"`},
		{"fleet/vault-user/sites/api/hosts/web-1", ok, http.StatusNotFound, `role "vault-user" holds no keys for site "api"`},
	} {
		e.fails(logical.UpdateOperation, tc.path, tc.data, tc.status, tc.want)
	}
	for _, op := range []logical.Operation{logical.ReadOperation, logical.DeleteOperation} {
		e.fails(op, hostPath+"web%1", nil, http.StatusBadRequest, `host name "web%1" is invalid`)
	}
	e.fails(logical.ReadOperation, "fleet/vault-user/sites/api", nil, http.StatusNotFound, `role "vault-user" holds no keys for site "api"`)
	e.fails(logical.ReadOperation, "fleet/nobody/sites/", nil, http.StatusNotFound, `role "nobody" does not exist`)
	e.fails(logical.ListOperation, "fleet/nobody/sites/www/hosts/", nil, http.StatusNotFound, `role "nobody" does not exist`)
	e.assertStorageUnchanged(before)
}

// A report of a key Vault never handed out for the site is a misconfigured
// host or a probe: refused, and logged without the value.
func TestFleetRefusesAKeyVaultNeverHandedOut(t *testing.T) {
	e, _ := fleetEnv(t)
	e.copySite("vault-user", "api")
	e.writeRole("other-user", "other")
	e.copySite("other-user", "www")
	probes := map[string]string{
		"made up":             "AKIA-made-up-0001",
		"another site's key":  e.stored("vault-user", "api").AccessKey,
		"another corp's key":  e.stored("other-user", "www").AccessKey,
		"a secret by mistake": e.stored("vault-user", "www").SecretKey,
	}
	before := e.storageSnapshot()
	for what, key := range probes {
		msg := e.fails(logical.UpdateOperation, hostPath+"web-1", map[string]interface{}{"access_key": key},
			http.StatusBadRequest, `access_key is not a key Vault handed out for site "www" (value not shown)`)
		if strings.Contains(msg, key) {
			t.Fatalf("%s: the refusal quotes the value: %s", what, msg)
		}
	}
	e.assertStorageUnchanged(before)
	logs := e.logs.String()
	if n := strings.Count(logs, "refused a host report of an access key Vault never handed out"); n != len(probes) {
		t.Fatalf("%d refusal warnings logged, want %d:\n%s", n, len(probes), logs)
	}
	if !strings.Contains(logs, "host=web-1") || !strings.Contains(logs, "site=www") {
		t.Fatalf("the warning does not say which host and site:\n%s", logs)
	}
	for what, key := range probes {
		if strings.Contains(logs, key) {
			t.Fatalf("%s: the log quotes the refused value:\n%s", what, logs)
		}
	}
}

// A retired set was handed out: a host still on it is reported as such,
// not refused.
func TestFleetHostOnARetiredKeyIsShownNotRefused(t *testing.T) {
	e, old := fleetEnv(t)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.passOverlap()
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	e.report("vault-user", "www", "web-9", old)
	f := e.fleetSummary("vault-user", "www")
	if got := f["on_retired_keys"]; !reflect.DeepEqual(got, map[string]string{"web-9": old}) {
		t.Fatalf("on_retired_keys = %v", got)
	}
	if f["retire_allowed"] != true || len(stringsField(t, f, "on_primary")) != 0 {
		t.Fatalf("summary %v", f)
	}
}

func TestFleetSiteSummary(t *testing.T) {
	e, old := fleetEnv(t)
	e.report("vault-user", "www", "web-gone", old) // stops reporting
	e.clock.Add(20 * time.Minute)
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	primary := e.stored("vault-user", "www").AccessKey
	e.report("vault-user", "www", "web-a", primary)
	e.report("vault-user", "www", "web-b", old)
	e.report("vault-user", "www", "web-c", primary)
	e.clock.Add(10*time.Minute + time.Second) // web-gone: 30m1s without a report

	f := e.fleetSummary("vault-user", "www")
	want := map[string]interface{}{
		"role":                    "vault-user",
		"site":                    "www",
		"primary_access_key":      primary,
		"non_primary_access_keys": []string{old},
		"hosts":                   []string{"web-a", "web-b", "web-c"},
		"on_primary":              []string{"web-a", "web-c"},
		"on_old_keys":             map[string]string{"web-b": old},
		"on_retired_keys":         map[string]string{},
		"stale":                   []string{"web-gone"},
		"retire_allowed":          false,
		"retire_blocked_by": "1 host(s) still run a non-primary key: web-b (" + old + "); allowed once they report the primary key " +
			primary + ", or at 2026-12-01T10:50:00Z at the latest, when the last of them has not reported for fleet_stale_after (30m0s)",
		"retire_allowed_after": "2026-12-01T10:50:00Z",
	}
	if !reflect.DeepEqual(f, want) {
		t.Fatalf("summary\n got %v\nwant %v", f, want)
	}

	e.report("vault-user", "www", "web-b", primary)
	f = e.fleetSummary("vault-user", "www")
	if f["retire_allowed"] != true || f["retire_blocked_by"] != "" || f["retire_allowed_after"] != nil {
		t.Fatalf("every fresh host on the primary: %v", f)
	}

	// A longer fleet_stale_after brings web-gone back into the fleet.
	e.ok(logical.UpdateOperation, "config", map[string]interface{}{"fleet_stale_after": "1h"})
	f = e.fleetSummary("vault-user", "www")
	if got := f["on_old_keys"]; !reflect.DeepEqual(got, map[string]string{"web-gone": old}) || f["retire_allowed"] != false {
		t.Fatalf("with fleet_stale_after=1h: %v", f)
	}
}

func TestFleetAllSitesSummaryHoldsNoSecret(t *testing.T) {
	e, primary := fleetEnv(t)
	e.copySite("vault-user", "shop")
	e.report("vault-user", "www", "web-1", primary)
	resp := e.ok(logical.ReadOperation, "fleet/vault-user/sites/", nil)
	if got := resp.Data["keys"]; !reflect.DeepEqual(got, []string{"shop", "www"}) {
		t.Fatalf("keys = %v", got)
	}
	sites := resp.Data["sites"].(map[string]interface{})
	www := sites["www"].(map[string]interface{})
	if !reflect.DeepEqual(www["on_primary"], []string{"web-1"}) || www["retire_allowed"] != true {
		t.Fatalf("www: %v", www)
	}
	shop := sites["shop"].(map[string]interface{})
	if !reflect.DeepEqual(shop["hosts"], []string{}) || shop["primary_access_key"] != e.stored("vault-user", "shop").AccessKey {
		t.Fatalf("shop: %v", shop)
	}
	raw, _ := json.Marshal(resp.Data)
	for _, site := range []string{"www", "shop"} {
		if secret := e.stored("vault-user", site).SecretKey; strings.Contains(string(raw), secret) {
			t.Fatalf("the fleet view holds the secret key of %s", site)
		}
	}
}

func TestFleetBoundsTheHostsOfASite(t *testing.T) {
	e, primary := fleetEnv(t)
	e.b.maxHostsPerSite = 3
	for i := range 3 {
		e.report("vault-user", "www", fmt.Sprintf("web-%d", i), primary)
	}
	e.fails(logical.UpdateOperation, hostPath+"web-3", map[string]interface{}{"access_key": primary}, http.StatusBadRequest,
		`site "www" already holds the reports of 3 hosts; forget decommissioned hosts with: vault delete sigsci/fleet/vault-user/sites/www/hosts/<host>`)
	e.report("vault-user", "www", "web-0", primary) // a known host keeps reporting
	e.ok(logical.DeleteOperation, hostPath+"web-0", nil)
	e.report("vault-user", "www", "web-3", primary)
}

// The tidy on the active node forgets hosts not heard from for
// fleet_forget_after, of any role and site, once an hour.
func TestFleetTidyForgetsHostsNotHeardFrom(t *testing.T) {
	e, primary := fleetEnv(t)
	e.report("vault-user", "www", "web-old", primary)
	e.clock.Add(200 * time.Hour)
	e.report("vault-user", "www", "web-new", primary)
	e.ok(logical.DeleteOperation, "creds/vault-user/sites/www", nil) // a site gone: its reports go too, in time
	e.clock.Add(520*time.Hour + time.Second)                         // web-old: 720h1s

	e.tick()
	hosts := e.ok(logical.ListOperation, hostPath, nil).Data["keys"]
	if !reflect.DeepEqual(hosts, []string{"web-new"}) {
		t.Fatalf("after the tidy: %v", hosts)
	}
	if !strings.Contains(e.logs.String(), "forgot hosts not heard from for fleet_forget_after: hosts=1") {
		t.Fatalf("the tidy logged nothing:\n%s", e.logs.String())
	}

	// web-new turns 720h old at 10:00 + 920h; a tidy half an hour before
	// keeps it, and the next tidy comes an hour after that one.
	e.clock.Set(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC).Add(920*time.Hour - 30*time.Minute))
	e.tick()
	e.clock.Add(40 * time.Minute)
	e.tick()
	if got := e.ok(logical.ListOperation, hostPath, nil).Data["keys"]; !reflect.DeepEqual(got, []string{"web-new"}) {
		t.Fatalf("forgotten too early, or a tidy ran within the hour: %v", got)
	}
	e.clock.Add(30 * time.Minute)
	e.tick()
	if got := e.ok(logical.ListOperation, hostPath, nil).Data["keys"]; got != nil {
		t.Fatalf("web-new not forgotten: %v", got)
	}
}

// storageFailingAt fails the storage calls on one key (or prefix, for List)
// with a storage error that names nothing, as a raft or Consul one may.
type storageFailingAt struct {
	logical.Storage
	op, key string
}

var errStorageDown = errors.New("storage unavailable")

func (f *storageFailingAt) List(ctx context.Context, prefix string) ([]string, error) {
	if f.op == "list" && prefix == f.key {
		return nil, errStorageDown
	}
	return f.Storage.List(ctx, prefix)
}

func (f *storageFailingAt) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	if f.op == "get" && key == f.key {
		return nil, errStorageDown
	}
	return f.Storage.Get(ctx, key)
}

func (f *storageFailingAt) Delete(ctx context.Context, key string) error {
	if f.op == "delete" && key == f.key {
		return errStorageDown
	}
	return f.Storage.Delete(ctx, key)
}

// A tidy that storage stops says, in its log line, which role, site or
// host it could not read or forget, and forgets nothing it did not reach.
func TestFleetTidyThatStorageStopsSaysWhere(t *testing.T) {
	for _, tc := range []struct {
		op, key, want string
	}{
		{"list", "fleet/", "listing the roles with host reports: storage unavailable"},
		{"list", "fleet/vault-user/", `listing the sites of role "vault-user" with host reports: storage unavailable`},
		{"list", "fleet/vault-user/www/", `listing the hosts of site "www" of role "vault-user": storage unavailable`},
		{"get", "fleet/vault-user/www/web-old", `reading the report of host "web-old" of site "www" of role "vault-user": storage unavailable`},
		{"delete", "fleet/vault-user/www/web-old", `forgetting the report of host "web-old" of site "www" of role "vault-user": storage unavailable`},
	} {
		t.Run(tc.op+" "+tc.key, func(t *testing.T) {
			e, primary := fleetEnv(t)
			e.report("vault-user", "www", "web-old", primary)
			e.clock.Add(721 * time.Hour)

			storage := &storageFailingAt{Storage: e.storage, op: tc.op, key: tc.key}
			req := &logical.Request{Operation: logical.RollbackOperation, Storage: storage, MountPoint: "sigsci/"}
			if _, err := e.b.HandleRequest(context.Background(), req); err != nil {
				t.Fatalf("rollback: %v", err)
			}
			e.b.auto.wg.Wait()
			logs := e.logs.String()
			if !strings.Contains(logs, "fleet tidy stopped") || !strings.Contains(logs, "error="+strconv.Quote(tc.want)) {
				t.Fatalf("the tidy's log does not say %q:\n%s", tc.want, logs)
			}
			if got := e.ok(logical.ListOperation, hostPath, nil).Data["keys"]; !reflect.DeepEqual(got, []string{"web-old"}) {
				t.Fatalf("a tidy that could not finish forgot: %v", got)
			}
		})
	}
}

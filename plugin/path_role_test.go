package plugin

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

func TestRoleCreateReadListDelete(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.CreateOperation, "role/vault-user", map[string]interface{}{
		"corp": "acme", "email": acmeEmail, "token": acmeToken,
	})
	e.writeRole("edge", "other")

	resp := e.ok(logical.ReadOperation, "role/vault-user", nil)
	want := map[string]interface{}{
		"corp":             "acme",
		"email":            acmeEmail,
		"api_url":          sigsci.DefaultBaseURL,
		"token_configured": true,
		"stored_sites":     0,
		// no schedule
		"rotation_schedule":          "",
		"rotation_window":            0,
		"disable_automated_rotation": false,
		"auto_retire":                false,
	}
	if !reflect.DeepEqual(resp.Data, want) {
		t.Fatalf("read role: got %v, want %v", resp.Data, want)
	}

	// "vault read sigsci/role/" arrives as "role" (the CLI trims the slash),
	// "vault list sigsci/role" as a list of "role/".
	for _, tc := range []struct {
		op   logical.Operation
		path string
	}{
		{logical.ReadOperation, "role"},
		{logical.ReadOperation, "role/"},
		{logical.ListOperation, "role/"},
	} {
		resp := e.ok(tc.op, tc.path, nil)
		if got := resp.Data["keys"]; !reflect.DeepEqual(got, []string{"edge", "vault-user"}) {
			t.Fatalf("%s %s: keys = %v", tc.op, tc.path, got)
		}
	}

	e.ok(logical.DeleteOperation, "role/vault-user", nil)
	e.fails(logical.ReadOperation, "role/vault-user", nil, http.StatusNotFound, `role "vault-user" does not exist`)
	if got := e.ok(logical.ListOperation, "role/", nil).Data["keys"]; !reflect.DeepEqual(got, []string{"edge"}) {
		t.Fatalf("after delete: keys = %v", got)
	}
	e.fails(logical.DeleteOperation, "role/vault-user", nil, http.StatusNotFound, "does not exist")
}

func TestRoleUpdateWithoutTokenKeepsIt(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"email": "ACME-ops@acme.example"})
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"email": acmeEmail})

	r, err := e.b.loadRole(context.Background(), e.storage, "vault-user")
	if err != nil || r == nil {
		t.Fatalf("load role: %v %v", r, err)
	}
	if r.Token != acmeToken {
		t.Fatalf("update without token changed the stored token")
	}
	// The kept token still works at the API.
	e.copySite("vault-user", "www")
}

func TestRoleTokenIsWriteOnlyAndSensitive(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	resp := e.ok(logical.ReadOperation, "role/vault-user", nil)
	if _, ok := resp.Data["token"]; ok {
		t.Fatalf("read role returned a token field")
	}
	// e.do already asserts that the token appears nowhere in any answer.

	var found bool
	for _, p := range e.b.Paths {
		if f, ok := p.Fields["token"]; ok {
			found = true
			if f.DisplayAttrs == nil || !f.DisplayAttrs.Sensitive {
				t.Fatalf("path %s: token field is not marked sensitive", p.Pattern)
			}
		}
	}
	if !found {
		t.Fatal("no path has a token field")
	}
	if s := (roleEntry{Token: acmeToken}).String(); strings.Contains(s, acmeToken) {
		t.Fatalf("roleEntry.String shows the token: %s", s)
	}
}

func TestRoleAPIURL(t *testing.T) {
	e := newTestEnv(t)
	e.ok(logical.UpdateOperation, "role/r", map[string]interface{}{
		"corp": "acme", "email": acmeEmail, "token": acmeToken, "api_url": e.apiURL() + "/",
	})
	if got := str(t, e.ok(logical.ReadOperation, "role/r", nil), "api_url"); got != e.apiURL() {
		t.Fatalf("api_url = %q, want the trailing slash trimmed: %q", got, e.apiURL())
	}
	e.copySite("r", "www")
}

func TestRoleValidation(t *testing.T) {
	valid := func() map[string]interface{} {
		return map[string]interface{}{"corp": "acme", "email": acmeEmail, "token": acmeToken}
	}
	with := func(k string, v interface{}) map[string]interface{} {
		d := valid()
		d[k] = v
		return d
	}
	without := func(k string) map[string]interface{} {
		d := valid()
		delete(d, k)
		return d
	}
	cases := []struct {
		name string
		path string
		data map[string]interface{}
		want string
	}{
		{"create without corp", "role/new", without("corp"), "corp is required"},
		{"create without email", "role/new", without("email"), "email is required"},
		{"create without token", "role/new", without("token"), "token is required"},
		{"empty corp", "role/r", with("corp", ""), "corp is required"},
		{"empty email", "role/r", with("email", " "), "email is required"},
		{"empty token", "role/r", with("token", " \n"), "token is required"},
		{"upper-case corp", "role/r", with("corp", "Acme"), "corp \"Acme\" is invalid"},
		{"corp with slash", "role/r", with("corp", "ac/me"), "is invalid"},
		{"oversized corp", "role/r", with("corp", strings.Repeat("a", 101)), "is invalid"},
		{"not an email", "role/r", with("email", "ops"), "not a plain address"},
		{"email with name", "role/r", with("email", "Ops <ops@acme.example>"), "not a plain address"},
		{"oversized email", "role/r", with("email", strings.Repeat("a", 250)+"@acme.example"), "longer than"},
		{"token with space", "role/r", with("token", "abc def"), "printable ASCII"},
		{"token with control char", "role/r", with("token", "abc\x00def"), "printable ASCII"},
		{"oversized token", "role/r", with("token", strings.Repeat("x", maxTokenLen+1)), "longer than"},
		{"api_url not http", "role/r", with("api_url", "ftp://api.example"), "http:// or https://"},
		{"api_url relative", "role/r", with("api_url", "dashboard.example/api/v0"), "http:// or https://"},
		{"api_url with credentials", "role/r", with("api_url", "https://u:p@api.example"), "credentials"},
		{"api_url with query", "role/r", with("api_url", "https://api.example/?x=1"), "query"},
		{"api_url oversized", "role/r", with("api_url", "https://api.example/"+strings.Repeat("a", maxAPIURLLen)), "longer than"},
		{"api_url http to a remote host", "role/r", with("api_url", "http://api.example/api/v0"), "api_url must use https://"},
		{"api_url http to a private address", "role/r", with("api_url", "http://10.1.2.3:8085/api/v0"), "api_url must use https://"},
		{"api_url http to a name like a loopback address", "role/r", with("api_url", "http://127.0.0.1.nip.io/api/v0"), "api_url must use https://"},
		{"api_url http to a subdomain of localhost", "role/r", with("api_url", "http://localhost.attacker.example/api/v0"), "api_url must use https://"},
		{"role name with space", "role/bad name", valid(), "role name \"bad name\" is invalid"},
		{"role name starts with dash", "role/-r", valid(), "is invalid"},
		{"oversized role name", "role/" + strings.Repeat("r", maxRoleNameLen+1), valid(), "longer than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t)
			e.writeRole("r", "acme") // an existing role must stay as it is
			before := e.storageSnapshot()
			msg := e.fails(logical.UpdateOperation, tc.path, tc.data, http.StatusBadRequest, tc.want)
			if strings.Contains(msg, acmeToken) {
				t.Fatalf("error quotes the token: %s", msg)
			}
			e.assertStorageUnchanged(before)
		})
	}

	t.Run("api_url over http only to a loopback host", func(t *testing.T) {
		e := newTestEnv(t)
		for _, u := range []string{
			"http://127.0.0.1:8085/api/v0", "http://127.9.9.9/api/v0", "http://[::1]:8085/api/v0",
			"http://localhost:8085/api/v0", "http://LocalHost/api/v0", "https://api.example/api/v0",
		} {
			e.ok(logical.UpdateOperation, "role/r", with("api_url", u))
			if got := str(t, e.ok(logical.ReadOperation, "role/r", nil), "api_url"); got != u {
				t.Fatalf("api_url %q stored as %q", u, got)
			}
		}
	})

	t.Run("create needs every field", func(t *testing.T) {
		e := newTestEnv(t)
		e.fails(logical.CreateOperation, "role/new", map[string]interface{}{"corp": "acme"}, http.StatusBadRequest, "email is required")
		if len(e.storageSnapshot()) != 0 {
			t.Fatal("a refused create stored something")
		}
	})
}

func TestRoleCorpChangeRefusedWhileHoldingKeys(t *testing.T) {
	e := newStoredSite(t)
	before := e.storageSnapshot()
	e.fails(logical.UpdateOperation, "role/vault-user", map[string]interface{}{
		"corp": "other", "email": otherEmail, "token": otherToken,
	}, http.StatusBadRequest, "holds stored keys for 1 site(s)")
	e.assertStorageUnchanged(before)

	e.ok(logical.DeleteOperation, "creds/vault-user/sites/www", nil)
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{
		"corp": "other", "email": otherEmail, "token": otherToken,
	})
	// The new identity is used at once (the cached client was dropped).
	e.copySite("vault-user", "www")
	if got := e.stored("vault-user", "www").Corp; got != "other" {
		t.Fatalf("stored corp = %q after the role moved to corp other", got)
	}
}

func TestRoleDeleteRefusedWhileHoldingKeys(t *testing.T) {
	e := newStoredSite(t)
	e.copySite("vault-user", "api")
	if got := e.ok(logical.ReadOperation, "role/vault-user", nil).Data["stored_sites"]; got != 2 {
		t.Fatalf("stored_sites = %v, want 2", got)
	}

	before := e.storageSnapshot()
	e.fails(logical.DeleteOperation, "role/vault-user", nil, http.StatusBadRequest, "holds stored keys for 2 site(s) (api, www)")
	e.assertStorageUnchanged(before)

	resp := e.ok(logical.DeleteOperation, "role/vault-user", map[string]interface{}{"force": true})
	if got := resp.Data["deleted_sites"]; !reflect.DeepEqual(got, []string{"api", "www"}) {
		t.Fatalf("deleted_sites = %v", got)
	}
	if n := len(e.storageSnapshot()); n != 0 {
		t.Fatalf("%d storage entries left after a forced delete", n)
	}
	// Vault only: the key sets at the API are untouched.
	if all, _ := e.simSets("acme", "www"); len(all) != 1 {
		t.Fatalf("sets at the API after role delete: %v", all)
	}
}

func TestRoleWriteDropsCachedClient(t *testing.T) {
	e := newStoredSite(t)
	// A wrong token must take effect at once: the next copy fails.
	e.ok(logical.UpdateOperation, "role/vault-user", map[string]interface{}{"token": "tok-wrong"})
	msg := e.fails(logical.UpdateOperation, "creds/vault-user/sites/www", nil, http.StatusBadGateway, "401")
	if strings.Contains(msg, "tok-wrong") {
		t.Fatalf("error quotes the token: %s", msg)
	}
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www")
}

func TestRoleMovingAPIURLNeedsTheTokenAgain(t *testing.T) {
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	before := e.storageSnapshot()
	e.fails(logical.UpdateOperation, "role/vault-user",
		map[string]interface{}{"api_url": "https://attacker.example/api/v0"}, 400, "give the token again")
	e.assertStorageUnchanged(before)

	// With the token given again the move is the token owner's decision.
	e.ok(logical.UpdateOperation, "role/vault-user",
		map[string]interface{}{"api_url": "https://other.example/api/v0", "token": acmeToken})
	r, err := e.b.loadRole(context.Background(), e.storage, "vault-user")
	if err != nil || r == nil || r.APIURL != "https://other.example/api/v0" {
		t.Fatalf("api_url not moved with the token given: %v %v", r, err)
	}
}

package plugin

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// dialectExtraSites makes the corp's sites list longer than one page.
const dialectExtraSites = 120

// The operator's story against every shape the real API might have: copy all
// sites, rotate one, retire the old set, each while the API rate-limits the
// call that matters once.
func TestDialectsCopyRotateRetireAgainstEachAPIShape(t *testing.T) {
	for _, d := range sigscisim.Dialects() {
		t.Run(d.Name, func(t *testing.T) {
			e := newTestEnv(t)
			for i := range dialectExtraSites {
				e.sim.AddSite("acme", sigscisim.SiteSeed{Name: fmt.Sprintf("bulk%03d", i)})
			}
			if err := e.sim.SetDialect(d.Dialect); err != nil {
				t.Fatal(err)
			}
			e.writeRole("vault-user", "acme")

			e.copyAllUnderDialect(d)
			old, primary := e.rotateUnderDialect()
			e.retireUnderDialect(d, old, primary)
			if strings.Contains(e.logs.String(), "disagrees") {
				t.Errorf("the list's primary flag was reported as disagreeing:\n%s", e.logs.String())
			}
		})
	}
}

// copyAllUnderDialect copies every site with the first call rate-limited,
// and checks that each site the API shows is stored once.
func (e *testEnv) copyAllUnderDialect(d sigscisim.NamedDialect) {
	e.t.Helper()
	var listed []string
	for _, c := range e.sim.State().Corps {
		if c.Name == "acme" {
			for _, s := range c.Sites {
				listed = append(listed, s.Name)
			}
		}
	}
	if d.SitesIgnorePage {
		// The client asks for pages of 100; an API that ignores page shows
		// only the first, however often it is asked.
		listed = listed[:100]
	}
	slices.Sort(listed)

	e.sim.FailNext(1, http.StatusTooManyRequests)
	resp := e.ok(logical.UpdateOperation, "creds/vault-user/sites/", nil)
	seen := append(slices.Clone(resp.Data["copied"].([]string)), resp.Data["unchanged"].([]string)...)
	slices.Sort(seen)
	if resp.Data["total"] != len(listed) || !slices.Equal(seen, listed) || len(resp.Data["failed"].(map[string]interface{})) != 0 {
		e.t.Fatalf("copy of all sites: total %v, copied or unchanged %d (%v...), failed %v; want each of %d sites once",
			resp.Data["total"], len(seen), seen[:min(5, len(seen))], resp.Data["failed"], len(listed))
	}
	stored, err := e.b.storedSites(e.t.Context(), e.storage, "vault-user")
	if err != nil || !slices.Equal(stored, listed) {
		e.t.Fatalf("stored %d sites (%v), want %d", len(stored), err, len(listed))
	}
	if d.SitesIgnorePage && !strings.Contains(e.logs.String(), "ignores page") {
		e.t.Errorf("no warning that the API ignores page:\n%s", e.logs.String())
	}
}

// rotateUnderDialect rotates www with the create rate-limited once, and
// checks that Vault stores the API's new primary. It returns the old and
// the new primary access keys.
func (e *testEnv) rotateUnderDialect() (string, string) {
	e.t.Helper()
	old := e.stored("vault-user", "www").AccessKey
	e.sim.FailNextOn(sigscisim.EndpointCreateKeySet, 1, http.StatusTooManyRequests)
	rot := e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	sets := e.sim.KeySets("acme", "www")
	all, primary := e.simSets("acme", "www")
	stored := e.stored("vault-user", "www")
	if len(all) != 2 || primary == old || !slices.Contains(all, old) {
		e.t.Fatalf("after rotate the API has %v, primary %s (old %s): want one new primary set", all, primary, old)
	}
	if str(e.t, rot, "accessKey") != primary || stored.AccessKey != primary || stored.SecretKey != sets[1].SecretKey {
		e.t.Fatalf("after rotate Vault stores %s, answered %s; the API's primary is %s", stored.AccessKey, str(e.t, rot, "accessKey"), primary)
	}
	if !slices.Equal(stored.nonPrimaryAccessKeys(), []string{old}) || e.walCount() != 0 {
		e.t.Fatalf("after rotate: non-primary %v, %d WAL entries", stored.nonPrimaryAccessKeys(), e.walCount())
	}
	return old, primary
}

// retireUnderDialect retires the old set with its DELETE rate-limited once.
// An API whose DELETE route answers 404 retires nothing, and Vault must not
// believe otherwise.
func (e *testEnv) retireUnderDialect(d sigscisim.NamedDialect, old, primary string) {
	e.t.Helper()
	e.passOverlap()
	e.sim.FailNextOn(sigscisim.EndpointDeleteKeySet, 1, http.StatusTooManyRequests)
	if d.DeleteAnswer == sigscisim.DeleteWrongRoute404 {
		e.fails(logical.DeleteOperation, "rotate/sites/www", nil, http.StatusBadGateway, "still lists it")
		if all, _ := e.simSets("acme", "www"); !slices.Contains(all, old) {
			e.t.Fatalf("the old set is gone at the API: %v", all)
		}
		if got := e.stored("vault-user", "www").nonPrimaryAccessKeys(); !slices.Equal(got, []string{old}) {
			e.t.Fatalf("Vault forgot the old set the API still has: non-primary %v", got)
		}
		return
	}
	ret := e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
	if got := ret.Data["retired"]; !slices.Equal(got.([]string), []string{old}) {
		e.t.Fatalf("retired = %v, want [%s]", got, old)
	}
	if _, ok := e.sim.RetiredAt(old); !ok {
		e.t.Fatalf("the API did not retire %s", old)
	}
	e.assertRetired(primary)
}

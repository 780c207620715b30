package vaultcli

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

// TestCopyAllRidesOutAnUnsteadyAPI runs the documented copy of every site
// while the API answers 429 and 500, through the real CLI: the command
// completes, every site ends up in Vault once with the API's primary pair,
// nothing is created at the API, and a site the API keeps failing for keeps
// the keys Vault already held.
func TestCopyAllRidesOutAnUnsteadyAPI(t *testing.T) {
	d := newDeskWithRole(t)
	sim := d.sim
	before := keySetsBySite(d)

	copyAll := func(t *testing.T) string {
		t.Helper()
		r := d.sh(t, docCopyAll)
		out := r.OK(t)
		harness.NoSecrets(t, "the copy-all output", r.Stdout+r.Stderr, map[string]string{"the API token": d.apiToken})
		return out
	}
	assertSummary := func(t *testing.T, out string, want map[string]string) {
		t.Helper()
		for key, value := range want {
			if got := field(t, out, key); got != value {
				t.Errorf("%s: %s = %s, want %s\n%s", docCopyAll, key, got, value, out)
			}
		}
	}
	assertNothingCreated := func(t *testing.T) {
		t.Helper()
		for site, sets := range keySetsBySite(d) {
			if sets != before[site] {
				t.Errorf("site %s: key sets at the API went from %q to %q", site, before[site], sets)
			}
		}
	}
	assertVaultHoldsPrimaries := func(t *testing.T) {
		t.Helper()
		if got := field(t, d.sh(t, docListKeys).OK(t), "keys"); got != "["+strings.Join(corpSites, " ")+"]" {
			t.Fatalf("Vault lists %s, want each site once: %v", got, corpSites)
		}
		for _, site := range corpSites {
			got := strings.TrimSpace(d.sh(t, "vault read -field=accessKey /sigsci/creds/vault-user/sites/"+site).OK(t))
			if want := d.primary(t, site).AccessKey; got != want {
				t.Errorf("Vault holds %s for %s, the API's primary is %s", got, site, want)
			}
		}
	}

	harness.StepT(t, "rate limited (429) at the start of the copy: it completes", func(t *testing.T) {
		sim.SetRetryAfter(1)
		sim.FailNext(3, http.StatusTooManyRequests)
		out := copyAll(t)
		if left := sim.Faults().FailNext; left != 0 {
			t.Fatalf("%d of the 3 answers of 429 were never asked for: the test proves nothing", left)
		}
		assertSummary(t, out, map[string]string{"copied": "[api shop www]", "total": "3", "failed": "map[]"})
		assertNothingCreated(t)
		assertVaultHoldsPrimaries(t)
	})

	var cleanCalls int // API calls of a copy-all that meets no fault
	harness.StepT(t, "server errors (500) during the copy: it completes", func(t *testing.T) {
		sim.ResetCalls()
		sim.FailNext(2, http.StatusInternalServerError)
		out := copyAll(t)
		if left := sim.Faults().FailNext; left != 0 {
			t.Fatalf("%d of the 2 answers of 500 were never asked for", left)
		}
		cleanCalls = totalCalls(d) - 2
		assertSummary(t, out, map[string]string{"unchanged": "[api shop www]", "total": "3", "failed": "map[]"})
		assertNothingCreated(t)
		assertVaultHoldsPrimaries(t)
	})

	harness.StepT(t, "a steady rate limit of one call per second: it completes", func(t *testing.T) {
		sim.ResetCalls()
		sim.SetRateLimit(1)
		defer sim.SetRateLimit(0)
		out := copyAll(t)
		if calls := totalCalls(d); calls <= cleanCalls {
			t.Fatalf("%d API calls, as many as without a limit (%d): nothing was rate limited", calls, cleanCalls)
		} else {
			t.Logf("%d API calls where %d suffice: %d answered 429 and were retried", calls, cleanCalls, calls-cleanCalls)
		}
		assertSummary(t, out, map[string]string{"unchanged": "[api shop www]", "total": "3", "failed": "map[]"})
		assertNothingCreated(t)
	})

	harness.StepT(t, "an API that keeps failing: the copy reports it and Vault keeps its keys", func(t *testing.T) {
		held := strings.TrimSpace(d.sh(t, "vault read -field=secretKey /sigsci/creds/vault-user/sites/"+siteName).OK(t))
		sim.FailNext(1000, http.StatusInternalServerError)
		r := d.sh(t, docCopyAll)
		sim.FailNext(0, 0)
		t.Logf("the operator sees (exit %d): %s %s", r.ExitCode, strings.TrimSpace(r.Stdout), strings.TrimSpace(r.Stderr))
		harness.MustContain(t, "the copy-all output", r.Stdout+r.Stderr, "500")
		harness.NoSecrets(t, "the copy-all output", r.Stdout+r.Stderr, map[string]string{"the API token": d.apiToken, "the secret key": held})
		got := strings.TrimSpace(d.sh(t, "vault read -field=secretKey /sigsci/creds/vault-user/sites/"+siteName).OK(t))
		if got != held {
			t.Fatalf("a failed copy changed the stored secret key")
		}
		assertNothingCreated(t)
		assertVaultHoldsPrimaries(t)
	})
}

func totalCalls(d *desk) int {
	n := 0
	for _, c := range d.sim.CallCounts() {
		n += c
	}
	return n
}

// keySetsBySite is each site's key sets at the API, in order.
func keySetsBySite(d *desk) map[string]string {
	out := make(map[string]string, len(corpSites))
	for _, site := range corpSites {
		out[site] = accessKeys(d.sim.KeySets(harness.CorpID, site))
	}
	return out
}

package vaultcli

import (
	"slices"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

// TestOperatorMistakesGetClearErrors types the documented commands with the
// usual mistakes and checks that the CLI fails with a message that says what
// is wrong, and never shows the API token.
func TestOperatorMistakesGetClearErrors(t *testing.T) {
	d := newDeskWithRole(t)
	noToken := map[string]string{"the API token": d.apiToken}

	refused := func(t *testing.T, command string, wants ...string) {
		t.Helper()
		r := d.sh(t, command)
		stderr := r.Refused(t)
		t.Logf("the operator sees: %s", strings.TrimSpace(stderr))
		harness.MustContain(t, "the error of "+command, stderr, wants...)
		harness.NoSecrets(t, "the error of "+command, r.Stdout+r.Stderr, noToken)
	}

	// vault read shows any 404 as "No value found at <path>" and drops the
	// plugin's message; writes and deletes show the message.
	t.Run("an unknown role", func(t *testing.T) {
		refused(t, "vault write -f /sigsci/creds/nobody/sites/www", `role "nobody" does not exist`)
		refused(t, "vault write -f /sigsci/creds/nobody/sites/", `role "nobody" does not exist`)
		refused(t, "vault delete /sigsci/creds/nobody/sites/www", `role "nobody" does not exist`)
		refused(t, "vault delete /sigsci/role/nobody", `role "nobody" does not exist`)
		refused(t, "vault read /sigsci/creds/nobody/sites/www", "No value found at sigsci/creds/nobody/sites/www")
		refused(t, "vault read /sigsci/role/nobody", "No value found at sigsci/role/nobody")
	})

	t.Run("an invalid site name", func(t *testing.T) {
		refused(t, "vault write -f /sigsci/creds/vault-user/sites/Bad_Site", `site name "Bad_Site" is invalid`)
		refused(t, "vault read /sigsci/creds/vault-user/sites/Bad_Site", `site name "Bad_Site" is invalid`)
		refused(t, "vault write -f /sigsci/rotate/sites/Bad_Site", `site name "Bad_Site" is invalid`)
	})

	t.Run("a site the API does not know", func(t *testing.T) {
		refused(t, "vault write -f /sigsci/creds/vault-user/sites/no-such-site", "no-such-site", "404")
	})

	t.Run("reading or rotating keys that were never copied", func(t *testing.T) {
		refused(t, "vault read /sigsci/creds/vault-user/sites/www", "No value found at sigsci/creds/vault-user/sites/www")
		refused(t, "vault delete /sigsci/creds/vault-user/sites/www", `no keys stored for site "www"`)
		refused(t, "vault write -f /sigsci/rotate/sites/www", `no role holds keys for site "www"`)
		refused(t, "vault delete /sigsci/rotate/sites/www", `no role holds keys for site "www"`)
		if n := len(d.sim.KeySets(harness.CorpID, siteName)); n != 1 {
			t.Fatalf("a refused rotation changed the API: %d key sets", n)
		}
	})

	t.Run("a role with a malformed email or corp", func(t *testing.T) {
		refused(t, "vault write -f /sigsci/role/bad corp=acme-corp email=not-an-email token=@token.txt", "email")
		refused(t, "vault write -f /sigsci/role/bad corp=Acme!Corp email=ops@acme.test token=@token.txt", "corp")
		refused(t, "vault write -f /sigsci/role/bad corp=acme-corp email=ops@acme.test", "token")
		if out := d.sh(t, "vault list sigsci/role").OK(t); !slices.Equal(strings.Fields(out), []string{"Keys", "----", "vault-user"}) {
			t.Fatalf("refused writes created a role; the roles are:\n%s", out)
		}
	})

	t.Run("an API token the API rejects", func(t *testing.T) {
		d.sh(t, "echo wrong-token-0123456789 > wrong.txt").OK(t)
		d.sh(t, "vault write -f /sigsci/role/wrong corp=acme-corp email=ops@acme.test token=@wrong.txt api_url="+d.sim.APIURL).OK(t)
		refused(t, "vault write -f /sigsci/creds/wrong/sites/www", "401")
	})

	t.Run("a role without stored keys is deleted without force", func(t *testing.T) {
		d.sh(t, "vault delete /sigsci/role/wrong").OK(t)
		refused(t, "vault read /sigsci/role/wrong", "No value found at sigsci/role/wrong")
	})
}

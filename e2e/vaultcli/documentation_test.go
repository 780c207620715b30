package vaultcli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// The install and the Vault CLI table of the product documentation, verbatim.
// Only <corp-id>, <email-id> and <site-name> are filled in (see documented).
const (
	docRegister = "vault plugin register -sha256=$(sha256sum vault-plugin-sigsci|cut -c-64) secret vault-plugin-sigsci"
	docEnable   = "vault secrets enable -path=sigsci vault-plugin-sigsci"

	docListRoles     = "vault read /sigsci/role/"
	docListRolesList = "vault list sigsci/role"
	docCreateRole    = "vault write -f /sigsci/role/vault-user corp=<corp-id> email=<email-id> token=@token.txt"
	docReadRole      = "vault read /sigsci/role/vault-user"
	docDeleteRole    = "vault delete /sigsci/role/vault-user"
	docCopySite      = "vault write -f /sigsci/creds/vault-user/sites/<site-name>"
	docCopyAll       = "vault write -f /sigsci/creds/vault-user/sites/"
	docListKeys      = "vault read /sigsci/creds/vault-user/sites/"
	docReadKeys      = "vault read /sigsci/creds/vault-user/sites/<site-name>"
	docRotate        = "vault write -f /sigsci/rotate/sites/<site-name>"
	docRetire        = "vault delete /sigsci/rotate/sites/<site-name>"
	docDeleteKeys    = "vault delete /sigsci/creds/vault-user/sites/<site-name>"
)

// TestOperatorFollowsTheDocumentation installs the plugin and runs every row
// of the documentation's Vault CLI table in the order an operator would,
// checking each answer against the (simulated) Signal Sciences API.
func TestOperatorFollowsTheDocumentation(t *testing.T) {
	d := newDesk(t)
	secrets := map[string]string{"the API token": d.apiToken, "the Vault root token": d.vault.Token}
	for _, site := range corpSites {
		secrets["the first secret key of "+site] = d.primary(t, site).SecretKey
	}
	first := d.primary(t, siteName)

	audit := filepath.Join(t.TempDir(), "audit.log")
	harness.StepT(t, "Vault audits every request to a file", func(t *testing.T) {
		d.sh(t, "vault audit enable file file_path="+audit).OK(t)
	})

	harness.StepT(t, "the plugin is unknown to Vault before it is registered", func(t *testing.T) {
		stderr := d.vault.Shell(t, programs.Bin, docEnable).Refused(t)
		harness.MustContain(t, "the refusal", stderr, "vault-plugin-sigsci")
	})

	harness.StepT(t, "operator registers the plugin binary by its checksum and enables it at sigsci/", func(t *testing.T) {
		out := d.vault.Shell(t, programs.Bin, docRegister).OK(t)
		harness.MustContain(t, "the register output", out, "Registered plugin: vault-plugin-sigsci")
		out = d.vault.Shell(t, programs.Bin, docEnable).OK(t)
		harness.MustContain(t, "the enable output", out, "Enabled the vault-plugin-sigsci secrets engine at: sigsci/")
		out = d.sh(t, "vault secrets list -format=json").OK(t)
		harness.MustContain(t, "the mount list", out, `"sigsci/"`, `"type": "vault-plugin-sigsci"`)
	})

	harness.StepT(t, "operator creates the role with the API token read from token.txt", func(t *testing.T) {
		out := d.sh(t, documented(docCreateRole)).OK(t)
		harness.MustContain(t, "the create output", out, "Success! Data written to: sigsci/role/vault-user")
		// The documented command targets the real API; this desk's API is the
		// simulator. Moving a role to another API host needs the token again,
		// so that nobody can send the stored token to a host of their choice.
		refused := d.sh(t, "vault write /sigsci/role/vault-user api_url="+d.sim.APIURL).Refused(t)
		harness.MustContain(t, "the refusal", refused, "give the token again")
		d.sh(t, "vault write /sigsci/role/vault-user api_url="+d.sim.APIURL+" token=@token.txt").OK(t)
	})

	harness.StepT(t, "both documented ways of listing roles show the role", func(t *testing.T) {
		out := d.sh(t, docListRoles).OK(t)
		if got := field(t, out, "keys"); got != "[vault-user]" {
			t.Fatalf("%s: keys = %s, want [vault-user]", docListRoles, got)
		}
		out = d.sh(t, docListRolesList).OK(t)
		if lines := strings.Fields(out); !slices.Equal(lines, []string{"Keys", "----", "vault-user"}) {
			t.Fatalf("%s printed:\n%s", docListRolesList, out)
		}
	})

	harness.StepT(t, "reading the role shows its identity and never the token", func(t *testing.T) {
		r := d.sh(t, docReadRole)
		out := r.OK(t)
		for key, want := range map[string]string{"corp": harness.CorpID, "email": harness.EmailID, "api_url": d.sim.APIURL, "token_configured": "true"} {
			if got := field(t, out, key); got != want {
				t.Errorf("%s: %s = %q, want %q", docReadRole, key, got, want)
			}
		}
		harness.NoSecrets(t, "the role read", r.Stdout+r.Stderr, map[string]string{"the API token": d.apiToken})
		js := d.sh(t, "vault read -format=json /sigsci/role/vault-user").OK(t)
		harness.NoSecrets(t, "the role read as JSON", js, map[string]string{"the API token": d.apiToken})
		if _, ok := parseJSON(t, js).Data["token"]; ok {
			t.Fatalf("the role read has a token field:\n%s", js)
		}
	})

	harness.StepT(t, "copying one site stores its primary keys from the API", func(t *testing.T) {
		r := d.sh(t, documented(docCopySite))
		out := r.OK(t)
		if got := field(t, out, "accessKey"); got != first.AccessKey {
			t.Fatalf("copy answered accessKey %q, the API's primary is %q", got, first.AccessKey)
		}
		if got := field(t, out, "status"); got != "copied" {
			t.Fatalf("copy answered status %q, want copied", got)
		}
		harness.NoSecrets(t, "the copy output", r.Stdout+r.Stderr, map[string]string{"the secret key": first.SecretKey})
	})

	harness.StepT(t, "copying all sites stores every site of the corp and reports per site", func(t *testing.T) {
		out := d.sh(t, docCopyAll).OK(t)
		for key, want := range map[string]string{"copied": "[api shop]", "unchanged": "[" + siteName + "]", "total": "3", "failed": "map[]"} {
			if got := field(t, out, key); got != want {
				t.Errorf("%s: %s = %s, want %s", docCopyAll, key, got, want)
			}
		}
		harness.NoSecrets(t, "the copy-all output", out, secrets)
	})

	harness.StepT(t, "listing keys for all sites shows each site's access key as the API has it, and no secret", func(t *testing.T) {
		out := d.sh(t, docListKeys).OK(t)
		if got := field(t, out, "keys"); got != "["+strings.Join(corpSites, " ")+"]" {
			t.Fatalf("%s: keys = %s, want %v", docListKeys, got, corpSites)
		}
		listed := map[string]string{}
		for _, site := range corpSites {
			ks := d.primary(t, site)
			harness.MustContain(t, docListKeys+" output", out, ks.AccessKey)
			listed["the secret key of "+site] = ks.SecretKey
		}
		harness.NoSecrets(t, docListKeys+" output", out, listed)
		raw := d.sh(t, "vault read -format=json /sigsci/creds/vault-user/sites/").OK(t)
		harness.NoSecrets(t, "the JSON of "+docListKeys, raw, listed)
		data := parseJSON(t, raw).Data
		sites, ok := data["sites"].(map[string]any)
		if !ok || len(sites) != len(corpSites) {
			t.Fatalf("data.sites has %d sites, want the %d sites of the corp", len(sites), len(corpSites))
		}
		for _, site := range corpSites {
			ks := d.primary(t, site)
			one, _ := sites[site].(map[string]any)
			if _, has := one["secretKey"]; has || one["accessKey"] != ks.AccessKey {
				t.Errorf("data.sites.%s: want the API's primary access key %s and no secretKey", site, ks.AccessKey)
			}
		}
	})

	harness.StepT(t, "reading one site's keys gives the API's primary set and re-read hints", func(t *testing.T) {
		out := d.sh(t, documented(docReadKeys)).OK(t)
		if field(t, out, "accessKey") != first.AccessKey || field(t, out, "secretKey") != first.SecretKey {
			t.Fatalf("%s does not show the API's primary set (access key %s):\n%s", docReadKeys, first.AccessKey, out)
		}
		resp := parseJSON(t, d.sh(t, documented("vault read -format=json /sigsci/creds/vault-user/sites/<site-name>")).OK(t))
		if stringField(t, resp.Data, "accessKey") != first.AccessKey || stringField(t, resp.Data, "secretKey") != first.SecretKey {
			t.Fatalf(".data.accessKey/.data.secretKey are not the API's primary set (access key %s)", first.AccessKey)
		}
		period := positiveNumber(t, resp.Data, "rotation_period")
		ttl := positiveNumber(t, resp.Data, "ttl")
		if ttl > period {
			t.Errorf("ttl %d is longer than rotation_period %d", ttl, period)
		}
		if resp.LeaseID != "" {
			t.Errorf("the keys came with lease %q; the design says no leases", resp.LeaseID)
		}
	})

	var rotated string // the new primary access key
	harness.StepT(t, "rotating creates a new primary at the API and keeps the old set live", func(t *testing.T) {
		r := d.sh(t, documented(docRotate))
		out := r.OK(t)
		sets := d.sim.KeySets(harness.CorpID, siteName)
		if len(sets) != 2 {
			t.Fatalf("the API holds %d key sets for %s after a rotation, want 2 (new primary, old)", len(sets), siteName)
		}
		next := d.primary(t, siteName)
		if next.AccessKey == first.AccessKey {
			t.Fatalf("the API's primary set did not change")
		}
		rotated = next.AccessKey
		secrets["the rotated secret key of "+siteName] = next.SecretKey
		if got := field(t, out, "accessKey"); got != next.AccessKey {
			t.Fatalf("rotate answered accessKey %q, the API's new primary is %q", got, next.AccessKey)
		}
		harness.NoSecrets(t, "the rotate output", r.Stdout+r.Stderr, map[string]string{
			"the new secret key": next.SecretKey, "the old secret key": first.SecretKey})
		if old := d.sim.CheckAgentKeys(first.AccessKey, first.SecretKey); !old.Live || old.Primary {
			t.Fatalf("the old set is %+v at the API, want live and non-primary", old)
		}

		out = d.sh(t, documented(docReadKeys)).OK(t)
		if field(t, out, "accessKey") != next.AccessKey || field(t, out, "secretKey") != next.SecretKey {
			t.Fatalf("after rotating, %s does not show the new primary set (access key %s):\n%s", docReadKeys, next.AccessKey, out)
		}
		if got := field(t, out, "non_primary_access_keys"); got != "["+first.AccessKey+"]" {
			t.Fatalf("non_primary_access_keys = %s, want [%s]", got, first.AccessKey)
		}
	})

	harness.StepT(t, "retiring waits until the hosts run the new key", func(t *testing.T) {
		stderr := d.sh(t, documented(docRetire)).Refused(t)
		harness.MustContain(t, "the refusal", stderr, `no host reports for site "`+siteName+`"`, "force=true overrides")
		// A host reports the key its agent runs with a plain write, as hostd
		// does with its own token.
		report := "vault write /sigsci/fleet/vault-user/sites/" + siteName + "/hosts/web-1 access_key="
		d.sh(t, report+first.AccessKey).OK(t)
		stderr = d.sh(t, documented(docRetire)).Refused(t)
		harness.MustContain(t, "the refusal", stderr, "1 host(s) still run a non-primary key: web-1 ("+first.AccessKey+")")
		d.sh(t, report+rotated).OK(t)
		if got := field(t, d.sh(t, "vault read /sigsci/fleet/vault-user/sites/"+siteName).OK(t), "retire_allowed"); got != "true" {
			t.Fatalf("retire_allowed = %s once the only host runs the new key", got)
		}
	})

	harness.StepT(t, "deleting non-primary keys retires the old set at the API", func(t *testing.T) {
		d.sh(t, documented(docRetire)).OK(t)
		sets := d.sim.KeySets(harness.CorpID, siteName)
		if len(sets) != 1 || sets[0].AccessKey != rotated || !sets[0].Primary {
			t.Fatalf("the API holds %s for %s after retiring, want only the new primary %s", accessKeys(sets), siteName, rotated)
		}
		if old := d.sim.CheckAgentKeys(first.AccessKey, first.SecretKey); old.Live {
			t.Fatalf("the old set is still live at the API: %+v", old)
		}
		out := d.sh(t, documented(docReadKeys)).OK(t)
		if got := field(t, out, "non_primary_access_keys"); got != "[]" {
			t.Fatalf("Vault still tracks non-primary sets after retiring: %s", got)
		}
	})

	harness.StepT(t, "deleting stored keys removes them from Vault only", func(t *testing.T) {
		d.sh(t, documented(docDeleteKeys)).OK(t)
		stderr := d.sh(t, documented(docReadKeys)).Refused(t)
		harness.MustContain(t, "the read of deleted keys", stderr, documented("No value found at sigsci/creds/vault-user/sites/<site-name>"))
		out := d.sh(t, docListKeys).OK(t)
		if got := field(t, out, "keys"); got != "[api shop]" {
			t.Fatalf("after deleting %s, stored sites are %s, want [api shop]", siteName, got)
		}
		if len(d.sim.KeySets(harness.CorpID, siteName)) != 1 || d.primary(t, siteName).AccessKey != rotated {
			t.Fatalf("deleting stored keys changed the API's key sets: %s", accessKeys(d.sim.KeySets(harness.CorpID, siteName)))
		}
	})

	harness.StepT(t, "deleting a role that still holds keys is refused unless forced", func(t *testing.T) {
		stderr := d.sh(t, docDeleteRole).Refused(t)
		harness.MustContain(t, "the refusal", stderr, `role "vault-user" holds stored keys for 2 site(s)`, "force=true")
		d.sh(t, docReadRole).OK(t)

		d.sh(t, docDeleteRole+" force=true").OK(t)
		stderr = d.sh(t, docReadRole).Refused(t)
		harness.MustContain(t, "the read of the deleted role", stderr, "No value found at sigsci/role/vault-user")
		if out := d.sh(t, docListRolesList); out.ExitCode == 0 && strings.Contains(out.Stdout, "vault-user") {
			t.Fatalf("the deleted role is still listed:\n%s", out)
		}
		for _, site := range []string{"api", "shop"} {
			if len(d.sim.KeySets(harness.CorpID, site)) != 1 {
				t.Fatalf("deleting the role changed the API's key sets of %s", site)
			}
		}
	})

	harness.StepT(t, "no secret reached the audit log, the Vault server's log or its output", func(t *testing.T) {
		auditLog, err := os.ReadFile(audit)
		if err != nil {
			t.Fatalf("reading the audit log: %v", err)
		}
		harness.MustContain(t, "the audit log", string(auditLog), `"path":"sigsci/rotate/sites/`+siteName+`"`, `"secretKey":"hmac-sha256:`)
		harness.NoSecrets(t, "the audit log", string(auditLog), secrets)

		serverLog := d.vault.ServerLog(t)
		// The plugin's own log lines reach this file.
		harness.MustContain(t, "the Vault server log", serverLog, "secrets.vault-plugin-sigsci.")
		harness.NoSecrets(t, "the Vault server log", serverLog, secrets)
		// The dev server prints its root token on standard output by design.
		delete(secrets, "the Vault root token")
		harness.NoSecrets(t, "the Vault server output", d.vault.Stdout(t), secrets)
	})
}

func accessKeys(sets []sigsci.KeySet) string {
	var keys []string
	for _, ks := range sets {
		keys = append(keys, fmt.Sprintf("%s(primary=%t)", ks.AccessKey, ks.Primary))
	}
	return "[" + strings.Join(keys, " ") + "]"
}

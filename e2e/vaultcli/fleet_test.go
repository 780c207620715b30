package vaultcli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

// TestFleetAndScheduleThroughTheCLI drives the closed loop with the real
// vault CLI: host reports, the fleet view, the guarded retirement and its
// override, the rotation status, the role-scoped rotate path and the
// schedule fields of a role.
func TestFleetAndScheduleThroughTheCLI(t *testing.T) {
	d := newDeskWithRole(t)
	d.sh(t, docCopyAll).OK(t)
	first := d.primary(t, siteName)
	secrets := map[string]string{"the API token": d.apiToken, "the secret key of " + siteName: first.SecretKey}
	hosts := "/sigsci/fleet/vault-user/sites/" + siteName + "/hosts/"

	harness.StepT(t, "path-help documents the new paths", func(t *testing.T) {
		for path, want := range map[string]string{
			"sigsci/fleet/vault-user/sites/" + siteName + "/hosts/web-1": "Report, read or forget the access key one host's agent runs.",
			"sigsci/fleet/vault-user/sites/" + siteName:                  "whether its old keys may be retired",
			"sigsci/fleet/vault-user/sites/":                             "Show the fleet view of every stored site of a role.",
			"sigsci/rotate/vault-user/sites/" + siteName:                 "rotate/<role>/sites/<site> is the same with the role in the path",
			"sigsci/role/vault-user":                                     "rotation_schedule",
			"sigsci/config":                                              "fleet_stale_after",
		} {
			harness.MustContain(t, "vault path-help "+path, d.sh(t, "vault path-help "+path).OK(t), want)
		}
	})

	harness.StepT(t, "hosts report the key their agent runs; a key Vault never handed out is refused", func(t *testing.T) {
		out := d.sh(t, "vault write -format=json "+hosts+"web-1 access_key="+first.AccessKey+
			" unit=sigsci-agent.service agent_started=2026-12-01T10:00:00Z version=v0.1.0").OK(t)
		data := parseJSON(t, out).Data
		if data["host"] != "web-1" || data["access_key"] != first.AccessKey || data["on_primary"] != true || data["reported_at"] == nil {
			t.Fatalf("the report answered %v", data)
		}
		d.sh(t, "vault write "+hosts+"web-2 access_key="+first.AccessKey).OK(t)
		probe := "AKIA-not-a-key-" + harness.RandomHex(t)
		stderr := d.sh(t, "vault write "+hosts+"web-3 access_key="+probe).Refused(t)
		harness.MustContain(t, "the refusal", stderr, "Code: 400", `access_key is not a key Vault handed out for site "`+siteName+`"`)
		if strings.Contains(stderr, probe) {
			t.Fatalf("the refusal quotes the refused value:\n%s", stderr)
		}
		log := d.vault.ServerLog(t)
		harness.MustContain(t, "the Vault server log", log, "refused a host report of an access key Vault never handed out", "host=web-3")
		harness.NoSecrets(t, "the Vault server log", log, map[string]string{"the refused value": probe})
		if out := d.sh(t, "vault list "+hosts).OK(t); !strings.Contains(out, "web-1") || !strings.Contains(out, "web-2") || strings.Contains(out, "web-3") {
			t.Fatalf("vault list %s:\n%s", hosts, out)
		}
	})

	var rotated string
	harness.StepT(t, "after a rotation the fleet view and the rotation status show who still runs the old key", func(t *testing.T) {
		rotated = field(t, d.sh(t, documented(docRotate)).OK(t), "accessKey")
		d.sh(t, "vault write "+hosts+"web-1 access_key="+rotated).OK(t)
		view := parseJSON(t, d.sh(t, "vault read -format=json /sigsci/fleet/vault-user/sites/"+siteName).OK(t)).Data
		if view["primary_access_key"] != rotated || view["retire_allowed"] != false {
			t.Fatalf("the fleet view: %v", view)
		}
		if old, _ := view["on_old_keys"].(map[string]any); old["web-2"] != first.AccessKey {
			t.Fatalf("on_old_keys = %v", view["on_old_keys"])
		}
		status := parseJSON(t, d.sh(t, "vault read -format=json /sigsci/rotate/sites/"+siteName).OK(t)).Data
		demoted, _ := status["demoted"].([]any)
		if len(demoted) != 1 || demoted[0].(map[string]any)["access_key"] != first.AccessKey || demoted[0].(map[string]any)["demoted_at"] == nil {
			t.Fatalf("the rotation status: %v", status)
		}
		all := d.sh(t, "vault read -format=json /sigsci/fleet/vault-user/sites/").OK(t)
		harness.MustContain(t, "the all-sites fleet view", all, `"api"`, `"shop"`, `"`+siteName+`"`)
		raw, _ := json.Marshal(status)
		harness.NoSecrets(t, "the fleet views and the rotation status", all+string(raw), secrets)
	})

	harness.StepT(t, "the guarded retirement names the host; force=true overrides and warns", func(t *testing.T) {
		stderr := d.sh(t, "vault delete /sigsci/rotate/vault-user/sites/"+siteName).Refused(t)
		harness.MustContain(t, "the refusal", stderr, "Code: 409", "web-2 ("+first.AccessKey+")",
			"force=true overrides: vault delete sigsci/rotate/vault-user/sites/"+siteName+" force=true")
		resp := parseJSON(t, d.sh(t, "vault delete -format=json /sigsci/rotate/vault-user/sites/"+siteName+" force=true").OK(t))
		harness.MustContain(t, "the forced retirement's warnings", strings.Join(resp.Warnings, "\n"),
			"retired with force=true although 1 host(s) still run a non-primary key: web-2 ("+first.AccessKey+")")
		if sets := d.sim.KeySets(harness.CorpID, siteName); len(sets) != 1 || sets[0].AccessKey != rotated {
			t.Fatalf("after the forced retirement the API holds %s", accessKeys(sets))
		}
		d.sh(t, "vault delete "+hosts+"web-2").OK(t) // decommissioned
		if out := d.sh(t, "vault list "+hosts).OK(t); strings.Contains(out, "web-2") {
			t.Fatalf("web-2 is still listed:\n%s", out)
		}
	})

	harness.StepT(t, "a role's schedule is shown with its next rotation", func(t *testing.T) {
		d.sh(t, `vault write /sigsci/role/vault-user rotation_schedule="0 3 * * 1" rotation_window=2h`).OK(t)
		out := d.sh(t, documented(docReadRole)).OK(t)
		for key, want := range map[string]string{"rotation_schedule": "0 3 * * 1", "rotation_window": "7200", "auto_retire": "true", "disable_automated_rotation": "false"} {
			if got := field(t, out, key); got != want {
				t.Errorf("%s = %q, want %q", key, got, want)
			}
		}
		if next := field(t, out, "next_rotation"); !strings.HasSuffix(next, "T03:00:00Z") {
			t.Errorf("next_rotation = %q", next)
		}
		stderr := d.sh(t, `vault write /sigsci/role/vault-user rotation_schedule="every monday"`).Refused(t)
		harness.MustContain(t, "the refusal", stderr, `rotation_schedule "every monday" is not a 5-field cron spec`)
		d.sh(t, "vault write /sigsci/config fleet_stale_after=10m").OK(t)
		config := d.sh(t, "vault read /sigsci/config").OK(t)
		if field(t, config, "fleet_stale_after") != "600" || field(t, config, "retire_min_overlap") != "120" {
			t.Fatalf("the config:\n%s", config)
		}
	})
}

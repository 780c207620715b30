package policy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// Sites of the operator's corp, harness.CorpID.
const (
	hostSite  = "www"  // the site the host serves
	otherSite = "shop" // a site of the same corp the host must not see
)

// TestPoliciesFromPackaging installs the plugin with packaging/vault/register.sh,
// lets an operator holding only sigsci-operator run the product, and checks
// that a host logged in through the AppRole of approle-example.sh reads its
// own site's keys and can do nothing else.
func TestPoliciesFromPackaging(t *testing.T) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	scripts := filepath.Join(root, "packaging", "vault")
	work := t.TempDir() // the operator's working directory
	sim, _ := harness.StartOperatorAPI(t, work, []sigscisim.SiteSeed{{Name: hostSite, DisplayName: "WWW"}, {Name: otherSite, DisplayName: "Shop"}})

	// A Vault whose plugin directory starts empty: register.sh must put the
	// binary there itself.
	p := programs
	p.Require(t)
	p.Bin = t.TempDir()
	vault := harness.StartVault(t, &p)

	// The release as an operator downloads it: the tarball and SHA256SUMS.
	download := t.TempDir()
	vault.Shell(t, download, "tar -C "+shellQuote(programs.Bin)+" -czf vault-plugin-sigsci.tar.gz vault-plugin-sigsci && sha256sum vault-plugin-sigsci.tar.gz > SHA256SUMS").OK(t)
	register := "VAULT_PLUGIN_DIR=" + shellQuote(p.Bin) + " sh " + shellQuote(filepath.Join(scripts, "register.sh")) + " vault-plugin-sigsci.tar.gz"

	harness.StepT(t, "register.sh installs, registers by checksum and mounts the plugin at sigsci/", func(t *testing.T) {
		out := vault.Shell(t, download, register).OK(t)
		harness.MustContain(t, "register.sh output", out, "vault-plugin-sigsci.tar.gz: OK", "Registered plugin: vault-plugin-sigsci",
			"Enabled the vault-plugin-sigsci secrets engine at: sigsci/", "Success! Uploaded policy: sigsci-operator")
		if hosttest.ReadFile(t, filepath.Join(p.Bin, "vault-plugin-sigsci")) != hosttest.ReadFile(t, programs.Command("vault-plugin-sigsci")) {
			t.Fatal("the binary in the plugin directory is not the released one")
		}
		var info struct {
			SHA256  string `json:"sha256"`
			Version string `json:"version"`
		}
		// Vault registers the version the binary reports.
		version := strings.TrimSpace(vault.Shell(t, p.Bin, "./vault-plugin-sigsci -version").OK(t))
		decode(t, vault.Run(t, download, "plugin", "info", "-format=json", "-version="+version, "secret", "vault-plugin-sigsci").OK(t), &info)
		want := strings.Fields(vault.Shell(t, p.Bin, "sha256sum vault-plugin-sigsci").OK(t))[0]
		if info.SHA256 != want || info.Version != version {
			t.Fatalf("Vault registered sha256 %s version %s, the binary's are %s and %s", info.SHA256, info.Version, want, version)
		}
	})

	harness.StepT(t, "register.sh run again (an upgrade) reloads the plugin and keeps the mount", func(t *testing.T) {
		out := vault.Shell(t, download, register).OK(t)
		harness.MustContain(t, "register.sh output", out, "Success! Reloaded plugin: vault-plugin-sigsci")
		harness.MustContain(t, "the mount list", vault.Run(t, download, "secrets", "list", "-format=json").OK(t), `"sigsci/"`)
	})

	harness.StepT(t, "register.sh refuses a tarball that does not match SHA256SUMS", func(t *testing.T) {
		bad := t.TempDir()
		vault.Shell(t, bad, "cp "+shellQuote(filepath.Join(download, "vault-plugin-sigsci.tar.gz"))+" . && echo tampered >> vault-plugin-sigsci.tar.gz && cp "+shellQuote(filepath.Join(download, "SHA256SUMS"))+" .").OK(t)
		stderr := vault.Shell(t, bad, register).Refused(t)
		harness.MustContain(t, "the refusal", stderr, "does not match SHA256SUMS")
		if hosttest.ReadFile(t, filepath.Join(p.Bin, "vault-plugin-sigsci")) != hosttest.ReadFile(t, programs.Command("vault-plugin-sigsci")) {
			t.Fatal("the refused tarball's binary reached the plugin directory")
		}
	})

	// Tokens go to files and into VAULT_TOKEN from there, so that no token
	// appears in a command line or the test log.
	as := func(tokenFile, command string) harness.Result {
		t.Helper()
		return vault.Shell(t, work, "VAULT_TOKEN=$(cat "+tokenFile+") "+command)
	}
	vault.Shell(t, work, "vault token create -policy=sigsci-operator -field=token > operator.token").OK(t)

	harness.StepT(t, "an operator with sigsci-operator runs roles, copy, read, rotate and retire", func(t *testing.T) {
		as("operator.token", "vault write -f /sigsci/role/vault-user corp="+harness.CorpID+" email="+harness.EmailID+" token=@token.txt").OK(t)
		as("operator.token", "vault write /sigsci/role/vault-user api_url="+sim.APIURL+" token=@token.txt").OK(t)
		harness.MustContain(t, "the role list", as("operator.token", "vault list sigsci/role").OK(t), "vault-user")
		harness.MustContain(t, "the role list", as("operator.token", "vault read /sigsci/role/").OK(t), "vault-user")
		as("operator.token", "vault read /sigsci/role/vault-user").OK(t)
		as("operator.token", "vault write -f /sigsci/creds/vault-user/sites/").OK(t)
		harness.MustContain(t, "the keys list", as("operator.token", "vault read /sigsci/creds/vault-user/sites/").OK(t), hostSite, otherSite)
		as("operator.token", "vault read /sigsci/creds/vault-user/sites/"+hostSite).OK(t)
		as("operator.token", "vault write -f /sigsci/rotate/sites/"+hostSite).OK(t)
		harness.MustContain(t, "the rotation status", as("operator.token", "vault read /sigsci/rotate/sites/"+hostSite).OK(t), "demoted", "primary_access_key")
		as("operator.token", "vault read /sigsci/rotate/vault-user/sites/"+hostSite).OK(t)
		// No host reports yet, and the old set was demoted just now.
		harness.MustContain(t, "the guarded retirement", as("operator.token", "vault delete /sigsci/rotate/sites/"+hostSite).Refused(t),
			"no host reports for site", "force=true overrides")
		harness.MustContain(t, "the fleet view", as("operator.token", "vault read /sigsci/fleet/vault-user/sites/").OK(t), hostSite, otherSite)
	})

	harness.StepT(t, "the operator policy grants nothing outside sigsci/", func(t *testing.T) {
		for _, command := range []string{
			"vault secrets disable sigsci",
			"vault policy write sigsci-operator /dev/null",
			"vault plugin register -sha256=0000000000000000000000000000000000000000000000000000000000000000 secret other",
			"vault auth enable userpass",
			"vault token create -policy=root",
		} {
			harness.MustContain(t, command, as("operator.token", command).Refused(t), "permission denied")
		}
	})

	harness.StepT(t, "approle-example.sh gives the host a role-id and secret-id and prints neither", func(t *testing.T) {
		r := vault.Shell(t, work, "SITE="+hostSite+" OUT=host sh "+shellQuote(filepath.Join(scripts, "approle-example.sh")))
		out := r.OK(t)
		for _, name := range []string{"role-id", "secret-id"} {
			path := filepath.Join(work, "host", name)
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("%s has mode %v, want 0600", name, info.Mode().Perm())
			}
			value := strings.TrimSpace(hosttest.ReadFile(t, path))
			harness.NoSecrets(t, "approle-example.sh output", out+r.Stderr, map[string]string{"the " + name: value})
		}
		policy := vault.Run(t, work, "policy", "read", "sigsci-host-"+hostSite).OK(t)
		harness.MustContain(t, "the host policy", policy, `path "sigsci/creds/vault-user/sites/`+hostSite+`"`)
		if strings.Contains(policy, "<site-name>") {
			t.Fatalf("the host policy still holds the placeholder:\n%s", policy)
		}
	})

	harness.StepT(t, "the host logs in with its AppRole", func(t *testing.T) {
		vault.Shell(t, work, "vault write -field=token auth/approle/login role_id=@host/role-id secret_id=@host/secret-id > host.token").OK(t)
		policies := strings.TrimSpace(as("host.token", "vault read -field=policies auth/token/lookup-self").OK(t))
		if policies != "[default sigsci-host-"+hostSite+"]" {
			t.Fatalf("host token policies %s, want [default sigsci-host-%s]", policies, hostSite)
		}
		// hostd keeps its token alive itself.
		as("host.token", "vault token renew").OK(t)
	})

	harness.StepT(t, "the host reads its own site's keys", func(t *testing.T) {
		var host, operator struct {
			Data map[string]any `json:"data"`
		}
		decode(t, as("host.token", "vault read -format=json /sigsci/creds/vault-user/sites/"+hostSite).OK(t), &host)
		decode(t, as("operator.token", "vault read -format=json /sigsci/creds/vault-user/sites/"+hostSite).OK(t), &operator)
		if host.Data["accessKey"] == nil || host.Data["accessKey"] != operator.Data["accessKey"] || host.Data["secretKey"] != operator.Data["secretKey"] {
			t.Fatal("the host did not read the site's current keys")
		}
	})

	report := "vault write /sigsci/fleet/vault-user/sites/" + hostSite + "/hosts/web-1 access_key="
	harness.StepT(t, "the host reports its agent's key; the operator retires once it runs the new one", func(t *testing.T) {
		var status struct {
			Data struct {
				Demoted []struct {
					AccessKey string `json:"access_key"`
				} `json:"demoted"`
			} `json:"data"`
		}
		decode(t, as("operator.token", "vault read -format=json /sigsci/rotate/sites/"+hostSite).OK(t), &status)
		if len(status.Data.Demoted) != 1 {
			t.Fatalf("the rotation status names %d demoted sets, want 1", len(status.Data.Demoted))
		}
		oldKey := status.Data.Demoted[0].AccessKey
		newKey := strings.TrimSpace(as("host.token", "vault read -field=accessKey /sigsci/creds/vault-user/sites/"+hostSite).OK(t))
		fleet := func() (onOld map[string]string, onPrimary []string, allowed bool) {
			var view struct {
				Data struct {
					OnOld     map[string]string `json:"on_old_keys"`
					OnPrimary []string          `json:"on_primary"`
					Allowed   bool              `json:"retire_allowed"`
				} `json:"data"`
			}
			decode(t, as("operator.token", "vault read -format=json /sigsci/fleet/vault-user/sites/"+hostSite).OK(t), &view)
			return view.Data.OnOld, view.Data.OnPrimary, view.Data.Allowed
		}

		as("host.token", report+oldKey).OK(t)
		if onOld, _, allowed := fleet(); onOld["web-1"] != oldKey || allowed {
			t.Fatalf("the fleet view after a report of the old key: on_old_keys %v, retire_allowed %t", onOld, allowed)
		}
		harness.MustContain(t, "the guarded retirement", as("operator.token", "vault delete /sigsci/rotate/sites/"+hostSite).Refused(t),
			"1 host(s) still run a non-primary key: web-1 ("+oldKey+")")

		as("host.token", report+newKey).OK(t)
		if _, onPrimary, allowed := fleet(); len(onPrimary) != 1 || onPrimary[0] != "web-1" || !allowed {
			t.Fatalf("the fleet view after a report of the new key: on_primary %v, retire_allowed %t", onPrimary, allowed)
		}
		as("operator.token", "vault delete /sigsci/rotate/sites/"+hostSite).OK(t)
		as("operator.token", "vault read /sigsci/fleet/vault-user/sites/"+hostSite+"/hosts/web-1").OK(t)
	})

	harness.StepT(t, "the host can do nothing else", func(t *testing.T) {
		hostKey := strings.TrimSpace(as("host.token", "vault read -field=accessKey /sigsci/creds/vault-user/sites/"+hostSite).OK(t))
		for _, command := range []string{
			"vault write /sigsci/fleet/vault-user/sites/" + otherSite + "/hosts/web-1 access_key=" + hostKey, // report for another site
			"vault write /sigsci/fleet/other-role/sites/" + hostSite + "/hosts/web-1 access_key=" + hostKey,
			"vault read /sigsci/fleet/vault-user/sites/" + hostSite, // the fleet
			"vault read /sigsci/fleet/vault-user/sites/",
			"vault read /sigsci/fleet/vault-user/sites/" + hostSite + "/hosts/web-1",
			"vault list /sigsci/fleet/vault-user/sites/" + hostSite + "/hosts",
			"vault delete /sigsci/fleet/vault-user/sites/" + hostSite + "/hosts/web-1", // forget itself
			"vault delete /sigsci/fleet/vault-user/sites/" + hostSite + "/hosts/web-2",
			"vault read /sigsci/rotate/sites/" + hostSite,
			"vault write -f /sigsci/rotate/vault-user/sites/" + hostSite,
			"vault delete /sigsci/rotate/vault-user/sites/" + hostSite,
			"vault read /sigsci/creds/vault-user/sites/" + otherSite, // another site's keys
			"vault read /sigsci/creds/vault-user/sites/",             // every site's keys
			"vault list sigsci/creds/vault-user/sites",
			"vault write -f /sigsci/creds/vault-user/sites/" + hostSite, // copy
			"vault write -f /sigsci/creds/vault-user/sites/",
			"vault delete /sigsci/creds/vault-user/sites/" + hostSite,
			"vault write -f /sigsci/rotate/sites/" + hostSite, // rotate
			"vault delete /sigsci/rotate/sites/" + hostSite,   // retire
			"vault write -f /sigsci/role/vault-user corp=" + harness.CorpID + " email=" + harness.EmailID + " token=@token.txt",
			"vault write -f /sigsci/role/other corp=" + harness.CorpID + " email=" + harness.EmailID + " token=@token.txt",
			"vault read /sigsci/role/vault-user",
			"vault read /sigsci/role/",
			"vault delete /sigsci/role/vault-user",
			"vault policy read sigsci-operator",
		} {
			harness.MustContain(t, command, as("host.token", command).Refused(t), "permission denied")
		}
		// And nothing it tried changed anything.
		harness.MustContain(t, "the reporting hosts", as("operator.token", "vault list /sigsci/fleet/vault-user/sites/"+hostSite+"/hosts").OK(t), "web-1")
		if out := as("operator.token", "vault list /sigsci/fleet/vault-user/sites/"+otherSite+"/hosts"); out.ExitCode == 0 {
			t.Fatalf("the host reported for another site:\n%s", out.Stdout)
		}
		harness.MustContain(t, "the role list", as("operator.token", "vault list sigsci/role").OK(t), "vault-user")
		if strings.Contains(as("operator.token", "vault list sigsci/role").OK(t), "other") {
			t.Fatal("the host created a role")
		}
	})
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("vault printed no JSON: %v\n%s", err, out)
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

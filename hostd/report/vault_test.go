package report

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

type staticToken string

func (s staticToken) Token() string { return string(s) }

// TestVaultWriterReportsWithTheHostsOwnPolicy writes reports to a real
// Vault with a token holding the packaged host policy; a kv mount at
// "sigsci" stands in for the engine, so the paths and the write are the
// real ones. kv needs "create" for a new entry where the engine's report
// path takes "update" only; the e2e tests check the policy with the engine.
func TestVaultWriterReportsWithTheHostsOwnPolicy(t *testing.T) {
	v := vaulttest.Start(t)
	v.Mount("sigsci", "kv", map[string]string{"version": "1"})
	policy, err := os.ReadFile("../../packaging/vault/host.hcl")
	if err != nil {
		t.Fatal(err)
	}
	rules := strings.ReplaceAll(string(policy), "<site-name>", "www")
	if !strings.Contains(rules, `capabilities = ["update"]`) {
		t.Fatalf("host.hcl no longer lets a host update its report:\n%s", rules)
	}
	v.WritePolicy("sigsci-host-www", strings.ReplaceAll(rules, `capabilities = ["update"]`, `capabilities = ["create", "update"]`))
	secret, err := v.Client().Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"sigsci-host-www"}})
	if err != nil {
		t.Fatal(err)
	}
	token := secret.Auth.ClientToken
	w := NewVaultWriter(v.NewClient(), staticToken(token))
	ctx := context.Background()

	data := reportData(Want{Site: www, AccessKey: "ak-1", Unit: agentUnit, AgentStarted: t0}, "1.2.3")
	if err := w.Write(ctx, reportPath(www, "web-1"), data); err != nil {
		t.Fatalf("report for the host's own site: %v", err)
	}
	stored, err := v.Client().Logical().Read("sigsci/fleet/vault-user/sites/www/hosts/web-1")
	if err != nil || stored == nil {
		t.Fatalf("read back: %v", err)
	}
	for k, want := range map[string]string{"access_key": "ak-1", "unit": agentUnit, "agent_started": "2026-12-01T10:00:00Z", "version": "1.2.3"} {
		if stored.Data[k] != want {
			t.Errorf("stored %s = %v, want %s", k, stored.Data[k], want)
		}
	}

	err = w.Write(ctx, reportPath(Site{Mount: "sigsci", Role: "vault-user", Site: "api"}, "web-1"), data)
	if err == nil || !strings.HasPrefix(err.Error(), "vault answered 403: ") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("report for another site: %v, want vault's 403", err)
	}
	if strings.ContainsAny(err.Error(), "\n\t*") {
		t.Fatalf("the refusal is not one line of what Vault said: %q", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("the error holds the token")
	}
	if err := NewVaultWriter(v.NewClient(), staticToken("")).Write(ctx, reportPath(www, "web-1"), data); !errors.Is(err, errNotLoggedIn) {
		t.Fatalf("without a token: %v", err)
	}
}

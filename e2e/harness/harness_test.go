package harness_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

var programs harness.Programs

func TestMain(m *testing.M) { os.Exit(harness.Main(m, &programs)) }

func TestDevServerServesTheCLIWithItsOwnRootToken(t *testing.T) {
	vault := harness.StartVault(t, &programs)
	dir := t.TempDir()

	out := vault.Run(t, dir, "token", "lookup", "-format=json").OK(t)
	if !strings.Contains(out, `"id": "`+vault.Token+`"`) {
		t.Fatalf("token lookup did not show the server's root token:\n%s", out)
	}

	vault.Shell(t, dir, "vault secrets enable kv").OK(t)
	vault.Shell(t, dir, "vault kv put kv/greeting text=hello").OK(t)
	out = vault.Shell(t, dir, "vault kv get -field=text kv/greeting").OK(t)
	if strings.TrimSpace(out) != "hello" {
		t.Fatalf("kv get printed %q, want hello", out)
	}
}

func TestCLIErrorsReachTheCaller(t *testing.T) {
	vault := harness.StartVault(t, &programs)
	stderr := vault.Shell(t, t.TempDir(), "vault write nosuchmount/x a=b").Refused(t)
	if !strings.Contains(stderr, "no handler for route") {
		t.Fatalf("stderr does not explain the failure:\n%s", stderr)
	}
}

func TestServerRunsWithPrivateHome(t *testing.T) {
	vault := harness.StartVault(t, &programs)
	// Dev mode writes its root token to ~/.vault-token: it must land in the
	// test's own home, never the user's.
	data, err := os.ReadFile(filepath.Join(vault.Home, ".vault-token"))
	if err != nil {
		t.Fatalf("dev server did not write its token helper file to the private home: %v", err)
	}
	if string(data) != vault.Token {
		t.Fatalf("private ~/.vault-token holds another token")
	}
	harness.NoSecrets(t, "the server log", vault.ServerLog(t), map[string]string{"the root token": vault.Token})
}

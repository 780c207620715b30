package harness_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestPausedServerAnswersNothingUntilResumed(t *testing.T) {
	vault := harness.StartVault(t, &programs)
	client := &http.Client{Timeout: time.Second}
	health := func() error {
		resp, err := client.Get(vault.Addr + "/v1/sys/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
	if err := health(); err != nil {
		t.Fatalf("the running server does not answer: %v", err)
	}

	vault.Pause(t)
	var netErr net.Error
	if err := health(); !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("the paused server: got %v, want a timeout", err)
	}

	vault.Resume(t)
	if err := health(); err != nil {
		t.Fatalf("the resumed server does not answer: %v", err)
	}
	// Left paused, the server must still stop when the test ends.
	vault.Pause(t)
}

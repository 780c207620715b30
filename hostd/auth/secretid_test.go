package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

const wrappingPath = "auth/approle/role/waf/secret-id"

// wrappedSecretID issues a secret-id as a trusted orchestrator does: wrapped,
// so only the response-wrapping token travels to the host.
func wrappedSecretID(t *testing.T, v *vaulttest.Server) string {
	t.Helper()
	c := v.Client()
	c.SetWrappingLookupFunc(func(operation, path string) string { return "5m" })
	s, err := c.Logical().Write(wrappingPath, nil)
	if err != nil || s == nil || s.WrapInfo == nil {
		t.Fatalf("issue a wrapped secret-id: %v", err)
	}
	if s.WrapInfo.CreationPath != wrappingPath {
		t.Fatalf("wrap creation path %q, want %q", s.WrapInfo.CreationPath, wrappingPath)
	}
	return s.WrapInfo.Token
}

// wrappingTokenLive asks Vault whether a wrapping token can still be
// unwrapped.
func wrappingTokenLive(t *testing.T, v *vaulttest.Server, token string) bool {
	t.Helper()
	_, err := v.NewClient().Logical().Write("sys/wrapping/lookup", map[string]any{"token": token})
	return err == nil
}

func TestWrappedSecretIDIsUnwrappedAtLogin(t *testing.T) {
	h := newAppRoleHarness(t, map[string]any{"token_ttl": "10m", "token_max_ttl": "1h"})
	first := wrappedSecretID(t, h.vault)
	h.writeFile(t, "secret-id", first)
	opts := h.options(MethodAppRole)
	opts.SecretIDResponseWrappingPath = "/" + wrappingPath + "/" // slashes do not matter
	a := h.start(t, opts)
	waitReady(t, a, 10*time.Second)
	token := h.seeToken(t)
	if wrappingTokenLive(t, h.vault, first) {
		t.Fatal("the wrapping token can still be unwrapped after the login")
	}
	_, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))

	// The file still holds the used wrapping token: the secret-id it gave
	// is reused.
	a.TokenRejected(token)
	_, next = h.events.WaitFor(t, next, 5*time.Second, "second login with the same file", isLogin(true))
	token = h.seeToken(t)

	// The orchestrator delivers a new wrapped secret-id: it is unwrapped at
	// the next login.
	second := wrappedSecretID(t, h.vault)
	h.writeFile(t, "secret-id", second)
	a.TokenRejected(token)
	h.events.WaitFor(t, next, 5*time.Second, "login with the new wrapped secret-id", isLogin(true))
	h.seeToken(t)
	if wrappingTokenLive(t, h.vault, second) {
		t.Fatal("the new wrapping token was not unwrapped")
	}
	for _, e := range h.events.All() {
		if !e.Renewal && !e.OK {
			t.Fatalf("a login failed: %+v", e)
		}
	}
	h.tokens = append(h.tokens, first, second) // wrapping tokens are secrets too
}

// A wrapping token created anywhere but the configured path is not taken
// for a secret-id, and is not unwrapped (so it is not spent either).
func TestWrappingTokenFromAnotherPathIsRefused(t *testing.T) {
	h := newAppRoleHarness(t, nil)
	c := h.vault.Client()
	c.SetWrappingLookupFunc(func(operation, path string) string { return "5m" })
	s, err := c.Logical().Write("sys/wrapping/wrap", map[string]any{"secret_id": h.vault.NewSecretID(h.role)})
	if err != nil {
		t.Fatal(err)
	}
	foreign := s.WrapInfo.Token
	h.writeFile(t, "secret-id", foreign)
	opts := h.options(MethodAppRole)
	opts.SecretIDResponseWrappingPath = wrappingPath
	a := h.start(t, opts)

	failed, _ := h.events.WaitFor(t, 0, 10*time.Second, "refused login", isLogin(false))
	if !strings.Contains(failed.Err, `created at "sys/wrapping/wrap"`) || !strings.Contains(failed.Err, wrappingPath) {
		t.Fatalf("login failure %q, want the creation path named", failed.Err)
	}
	if strings.Contains(failed.Err, foreign) {
		t.Fatal("the wrapping token appeared in the error")
	}
	if !wrappingTokenLive(t, h.vault, foreign) {
		t.Fatal("the foreign wrapping token was unwrapped")
	}
	select {
	case <-a.Ready():
		t.Fatal("logged in with a secret-id from the wrong path")
	default:
	}
	h.tokens = append(h.tokens, foreign)
}

func TestWrappedSecretIDWithoutVaultsAnswerIsAnError(t *testing.T) {
	client, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Client: client, Method: MethodAppRole, RoleIDFile: "r", SecretIDFile: "s", SecretIDResponseWrappingPath: wrappingPath})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.unwrapSecretID(t.Context(), "hvs.wrapping"); err == nil || strings.Contains(err.Error(), "hvs.wrapping") {
		t.Fatalf("unwrap against no Vault: %v, want an error without the token", err)
	}
}

package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

// certVault starts a TLS Vault whose cert method trusts the server's CA for
// the role waf-hosts.
func certVault(t *testing.T, tokenTTL string) *vaulttest.Server {
	t.Helper()
	v := vaulttest.StartTLS(t)
	if err := v.Client().Sys().EnableAuthWithOptions("cert", &api.EnableAuthOptions{Type: "cert"}); err != nil {
		t.Fatal(err)
	}
	v.Write("auth/cert/certs/waf-hosts", map[string]any{"certificate": hosttest.ReadFile(t, v.CACert), "token_ttl": tokenTTL, "token_max_ttl": "1h"})
	return v
}

// startCert runs a cert login on files, with the client hostd would build
// from them, until the test ends.
func startCert(t *testing.T, v *vaulttest.Server, dir string, files api.TLSConfig) (*harness, *Authenticator) {
	t.Helper()
	client := vaulttest.ClientFor(t, v.Addr, &files)
	h := newHarness(v, dir)
	opts := h.options(MethodCert)
	opts.Client, opts.CertName, opts.TLS = client, "waf-hosts", &files
	return h, h.start(t, opts)
}

func certLogin(t *testing.T, v *vaulttest.Server, files api.TLSConfig) error {
	t.Helper()
	c := vaulttest.ClientFor(t, v.Addr, &files)
	_, err := c.Logical().Write("auth/cert/login", map[string]any{"name": "waf-hosts"})
	return err
}

// tokenMeta returns the metadata Vault keeps for tok.
func tokenMeta(t *testing.T, v *vaulttest.Server, tok string) map[string]any {
	t.Helper()
	c := v.NewClient()
	c.SetToken(tok)
	s, err := c.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := s.Data["meta"].(map[string]any)
	return meta
}

func moveFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, []byte(hosttest.ReadFile(t, from)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Short-lived client certificates: the issuer replaces the key pair on disk
// and revokes the old certificate. The next login uses the new pair, without
// a restart.
func TestCertLoginUsesTheRenewedCertificate(t *testing.T) {
	v := certVault(t, "10m")
	dir := t.TempDir()
	files := api.TLSConfig{CACert: v.CACert, ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem")}
	oldCert, oldKey, oldSerial := v.IssueClientCert(dir, "old", "waf-host-1")
	copyFile(t, oldCert, files.ClientCert)
	copyFile(t, oldKey, files.ClientKey)
	h, a := startCert(t, v, dir, files)
	waitReady(t, a, 10*time.Second)
	first := h.seeToken(t)
	if cn := tokenMeta(t, v, first)["common_name"]; cn != "waf-host-1" {
		t.Fatalf("first login with common_name %v, want waf-host-1", cn)
	}
	_, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))

	// Rotate: a new pair in place of the old one, the old one revoked.
	newCert, newKey, _ := v.IssueClientCert(dir, "new", "waf-host-2")
	moveFile(t, newCert, files.ClientCert)
	moveFile(t, newKey, files.ClientKey)
	v.Write("auth/cert/crls/rotated", map[string]any{"crl": v.RevocationList(oldSerial)})
	if err := certLogin(t, v, api.TLSConfig{CACert: v.CACert, ClientCert: oldCert, ClientKey: oldKey}); err == nil {
		t.Fatal("the revoked certificate still logs in; the test would prove nothing")
	}

	a.TokenRejected(first) // force a login
	h.events.WaitFor(t, next, 5*time.Second, "login with the renewed certificate", isLogin(true))
	second := h.seeToken(t)
	if cn := tokenMeta(t, v, second)["common_name"]; cn != "waf-host-2" {
		t.Fatalf("login after the rotation with common_name %v, want the renewed certificate's waf-host-2", cn)
	}
	for _, e := range h.events.All() {
		if !e.Renewal && !e.OK {
			t.Fatalf("a login failed although the files held a valid pair: %+v", e)
		}
	}
}

// The CA file is read at every login too: hostd started with a CA that does
// not match the server logs in once the right CA is in the file.
func TestCertLoginReadsTheCAFileAgain(t *testing.T) {
	v := certVault(t, "10m")
	dir := t.TempDir()
	files := api.TLSConfig{CACert: filepath.Join(dir, "ca.pem"), ClientCert: v.ClientCert, ClientKey: v.ClientKey}
	vaulttest.WriteSelfSigned(t, files.CACert, filepath.Join(dir, "ca-key.pem"), "some other CA") // signed nothing the server uses
	h, a := startCert(t, v, dir, files)

	failed, next := h.events.WaitFor(t, 0, 10*time.Second, "failed login with the wrong CA", isLogin(false))
	if !strings.Contains(failed.Err, "certificate") {
		t.Fatalf("login failure %q, want the TLS verification error", failed.Err)
	}
	copyFile(t, v.CACert, files.CACert)
	h.events.WaitFor(t, next, 5*time.Second, "login with the CA fixed", isLogin(true))
	waitReady(t, a, time.Second)
	h.seeToken(t)
}

func TestCertLoginFailsClearlyWithoutTheKeyFile(t *testing.T) {
	v := certVault(t, "10m")
	dir := t.TempDir()
	files := api.TLSConfig{CACert: v.CACert, ClientCert: v.ClientCert, ClientKey: filepath.Join(dir, "missing-key.pem")}
	h := newHarness(v, dir)
	opts := h.options(MethodCert)
	opts.Client, opts.CertName, opts.TLS = v.NewClient(), "waf-hosts", &files
	h.start(t, opts)
	failed, _ := h.events.WaitFor(t, 0, 10*time.Second, "failed login", isLogin(false))
	if !strings.Contains(failed.Err, "missing-key.pem") {
		t.Fatalf("login failure %q, want it to name the key file", failed.Err)
	}
}

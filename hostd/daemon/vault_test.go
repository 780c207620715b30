package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

func presentedName(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	pair, err := cfg.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

func TestVaultClientUsesTheConfiguredCA(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	vaulttest.WriteSelfSigned(t, ca, filepath.Join(dir, "ca-key.pem"), "hostd test CA")
	_, transport, err := newVaultClient(config.Vault{Address: "https://vault.example:8200", CACert: ca})
	if err != nil {
		t.Fatal(err)
	}
	if transport.TLSClientConfig == nil || transport.TLSClientConfig.RootCAs == nil {
		t.Fatal("the configured ca_cert is not in the transport's TLS settings")
	}
	if _, _, err := newVaultClient(config.Vault{Address: "https://vault.example:8200", CACert: filepath.Join(dir, "missing.pem")}); err == nil {
		t.Fatal("a ca_cert that cannot be read was accepted")
	}
}

// The proxy's and the renewals' connections present the client certificate
// as it is on disk when they are made: a renewed short-lived certificate is
// used without a restart.
func TestVaultClientPresentsTheCertificateOnDisk(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	vaulttest.WriteSelfSigned(t, certFile, keyFile, "waf-host-1")
	_, transport, err := newVaultClient(config.Vault{Address: "https://vault.example:8200", ClientCert: certFile, ClientKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if got := presentedName(t, transport.TLSClientConfig); got != "waf-host-1" {
		t.Fatalf("presented %q, want waf-host-1", got)
	}
	vaulttest.WriteSelfSigned(t, certFile, keyFile, "waf-host-2")
	if got := presentedName(t, transport.TLSClientConfig); got != "waf-host-2" {
		t.Fatalf("presented %q after the renewal, want waf-host-2", got)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	_, err = transport.TLSClientConfig.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("error %v, want one naming the certificate files", err)
	}
}

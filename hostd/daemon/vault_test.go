package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
)

// writeKeyPair writes a self-signed certificate for commonName and its key.
func writeKeyPair(t *testing.T, certFile, keyFile, commonName string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: commonName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

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
	writeKeyPair(t, ca, filepath.Join(dir, "ca-key.pem"), "hostd test CA")
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
	writeKeyPair(t, certFile, keyFile, "waf-host-1")
	_, transport, err := newVaultClient(config.Vault{Address: "https://vault.example:8200", ClientCert: certFile, ClientKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if got := presentedName(t, transport.TLSClientConfig); got != "waf-host-1" {
		t.Fatalf("presented %q, want waf-host-1", got)
	}
	writeKeyPair(t, certFile, keyFile, "waf-host-2")
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

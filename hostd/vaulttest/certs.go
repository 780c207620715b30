package vaulttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCertificates makes a CA, a server certificate for 127.0.0.1 and a
// client certificate, writes them as PEM files in the server's directory,
// sets CACert, ClientCert and ClientKey, and returns the server's files.
func (s *Server) writeCertificates() (serverCert, serverKey string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "vaulttest CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	if s.ca, err = x509.ParseCertificate(caDER); err != nil {
		return "", "", err
	}
	s.caKey = caKey
	s.CACert = filepath.Join(s.dir, "ca.pem")
	if err := writePEM(s.CACert, "CERTIFICATE", caDER); err != nil {
		return "", "", err
	}
	server := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if serverCert, serverKey, err = s.issue(s.dir, "server", server); err != nil {
		return "", "", err
	}
	client := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "waf-host"},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	s.ClientCert, s.ClientKey, err = s.issue(s.dir, "client", client)
	return serverCert, serverKey, err
}

// WriteSelfSigned writes a self-signed CA certificate for commonName, which
// signed nothing a Server uses, to certFile, and its key to keyFile, as PEM.
func WriteSelfSigned(t testing.TB, certFile, keyFile, commonName string) {
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
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		t.Fatal(err)
	}
	if err := writePEM(keyFile, "PRIVATE KEY", keyDER); err != nil {
		t.Fatal(err)
	}
}

// IssueClientCert signs a new client certificate for commonName with the
// CA of a StartTLS server (as a short-lived certificate's issuer would),
// writes it and its key as name.pem and name-key.pem in dir, and returns the
// files and the certificate's serial number.
func (s *Server) IssueClientCert(dir, name, commonName string) (certFile, keyFile string, serial *big.Int) {
	s.t.Helper()
	if s.ca == nil {
		s.t.Fatal("IssueClientCert needs a server started with StartTLS")
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		s.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if certFile, keyFile, err = s.issue(dir, name, tmpl); err != nil {
		s.t.Fatal(err)
	}
	return certFile, keyFile, serial
}

// RevocationList returns a PEM certificate revocation list, signed by the CA
// of a StartTLS server, that revokes the given serial numbers.
func (s *Server) RevocationList(serials ...*big.Int) string {
	s.t.Helper()
	entries := make([]x509.RevocationListEntry, len(serials))
	for i, n := range serials {
		entries[i] = x509.RevocationListEntry{SerialNumber: n, RevocationTime: time.Now().Add(-time.Minute)}
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(time.Now().UnixNano()),
		ThisUpdate:                time.Now().Add(-time.Minute),
		NextUpdate:                time.Now().Add(time.Hour),
		RevokedCertificateEntries: entries,
	}, s.ca, s.caKey)
	if err != nil {
		s.t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

func (s *Server) issue(dir, name string, tmpl *x509.Certificate) (certFile, keyFile string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl.NotBefore, tmpl.NotAfter = s.ca.NotBefore, s.ca.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, s.ca, &key.PublicKey, s.caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
		return "", "", err
	}
	return certFile, keyFile, writePEM(keyFile, "PRIVATE KEY", keyDER)
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}

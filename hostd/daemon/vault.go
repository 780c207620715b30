package daemon

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
)

// vaultTimeout bounds one request of hostd's own (login, renewal) to Vault.
const vaultTimeout = 60 * time.Second

// newVaultClient builds the Vault client auth uses and the transport the
// proxy uses, both with the TLS settings of cfg and nothing from the
// environment (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_HEADERS...).
// The client certificate is read from its files again at every new
// connection, so a renewed short-lived certificate is presented without a
// restart; the cert login reads every TLS file again itself (see auth).
func newVaultClient(cfg config.Vault) (*api.Client, *http.Transport, error) {
	transport := cleanhttp.DefaultPooledTransport()
	// ConfigureTLS fills the transport's tls.Config and ignores the CA
	// when there is none.
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	apiCfg := &api.Config{
		Address:    cfg.Address,
		HttpClient: &http.Client{Transport: transport},
		Timeout:    vaultTimeout,
	}
	if err := apiCfg.ConfigureTLS(vaultTLS(cfg)); err != nil {
		return nil, nil, fmt.Errorf("vault TLS settings: %w", err)
	}
	if cfg.ClientCert != "" {
		transport.TLSClientConfig.GetClientCertificate = clientCertificateFromFiles(cfg.ClientCert, cfg.ClientKey)
	}
	client, err := api.NewClient(apiCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("vault client: %w", err)
	}
	// api.NewClient reads the token, namespace and extra headers from the
	// environment; hostd's configuration is the only source.
	client.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	client.ClearToken()
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	return client, transport, nil
}

// vaultTLS names hostd's TLS files for Vault.
func vaultTLS(cfg config.Vault) *api.TLSConfig {
	return &api.TLSConfig{
		CACert:        cfg.CACert,
		CAPath:        cfg.CAPath,
		ClientCert:    cfg.ClientCert,
		ClientKey:     cfg.ClientKey,
		TLSServerName: cfg.TLSServerName,
		Insecure:      cfg.TLSSkipVerify,
	}
}

// clientCertificateFromFiles loads the key pair at each TLS handshake. Its
// error names the files, never their content.
func clientCertificateFromFiles(certFile, keyFile string) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load vault client certificate %s: %w", certFile, err)
		}
		return &pair, nil
	}
}

package daemon

import (
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
func newVaultClient(cfg config.Vault) (*api.Client, *http.Transport, error) {
	transport := cleanhttp.DefaultPooledTransport()
	apiCfg := &api.Config{
		Address:    cfg.Address,
		HttpClient: &http.Client{Transport: transport},
		Timeout:    vaultTimeout,
	}
	err := apiCfg.ConfigureTLS(&api.TLSConfig{
		CACert:        cfg.CACert,
		CAPath:        cfg.CAPath,
		ClientCert:    cfg.ClientCert,
		ClientKey:     cfg.ClientKey,
		TLSServerName: cfg.TLSServerName,
		Insecure:      cfg.TLSSkipVerify,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vault TLS settings: %w", err)
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

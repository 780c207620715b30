package report

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/vaulterr"
)

// TokenSource hands out hostd's current Vault token ("" when there is
// none); hostd/auth's Authenticator is one.
type TokenSource interface {
	Token() string
}

// VaultWriter writes reports with hostd's own Vault client (its address,
// TLS settings, transport and namespace) and the token hostd's auth holds
// now: the same path to Vault as every other request of hostd's.
type VaultWriter struct {
	client *api.Client
	tokens TokenSource
}

// NewVaultWriter returns a Writer using client and the tokens of tokens.
func NewVaultWriter(client *api.Client, tokens TokenSource) *VaultWriter {
	return &VaultWriter{client: client, tokens: tokens}
}

var errNotLoggedIn = errors.New("not logged in to Vault yet")

// Write writes data at path. Its error says what Vault answered, never the
// token.
func (w *VaultWriter) Write(ctx context.Context, path string, data map[string]any) error {
	token := w.tokens.Token()
	if token == "" {
		return errNotLoggedIn
	}
	c, err := w.client.CloneWithHeaders() // keeps the namespace header
	if err != nil {
		return fmt.Errorf("vault client: %w", err)
	}
	c.SetToken(token)
	if _, err := c.Logical().WriteWithContext(ctx, path, data); err != nil {
		return vaulterr.Wrap(err)
	}
	return nil
}

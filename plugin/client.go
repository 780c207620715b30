package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// keysAPI is the part of the Signal Sciences API the engine uses. The real
// implementation is *sigsci.Client; tests may wrap it to inject faults.
// ListKeySets marks as primary the set GET .../keys names (the list's own
// flag is only cross-checked), so every decision below rests on that.
type keysAPI interface {
	ListSites(ctx context.Context, corp string) ([]sigsci.Site, error)
	PrimaryKeys(ctx context.Context, corp, site string) (sigsci.KeySet, error)
	ListKeySets(ctx context.Context, corp, site string) ([]sigsci.KeySet, error)
	CreateKeySet(ctx context.Context, corp, site string) (sigsci.KeySet, error)
	DeleteKeySet(ctx context.Context, corp, site, accessKey string) error
}

var _ keysAPI = (*sigsci.Client)(nil)

// clientFactory builds an API client for a role; the client reports
// answers of an unexpected shape to log.
type clientFactory func(r *roleEntry, log hclog.Logger) (keysAPI, error)

// newSigsciClient is the production clientFactory.
func newSigsciClient(r *roleEntry, log hclog.Logger) (keysAPI, error) {
	c, err := sigsci.New(sigsci.Config{
		BaseURL: r.APIURL,
		Email:   r.Email,
		Token:   r.Token,
		Logger:  log,
	})
	if err != nil {
		return nil, fmt.Errorf("building API client for corp %q: %w", r.Corp, err)
	}
	return c, nil
}

// cachedClient is an API client and the role settings it was built from.
type cachedClient struct {
	role roleEntry
	api  keysAPI
}

// client returns the cached API client of a role, building it on first use
// or when the role's settings differ from those the cached client was built
// with, so a client never outlives the credentials it was built with (even
// when a request that loaded the role before an update comes late). Writes,
// deletes and Invalidate also drop the cache entry.
func (b *backend) client(name string, r *roleEntry) (keysAPI, error) {
	b.clientsMu.Lock()
	defer b.clientsMu.Unlock()
	if c, ok := b.clients[name]; ok && c.role == *r {
		return c.api, nil
	}
	api, err := b.newClient(r, b.Logger().Named("api"))
	if err != nil {
		return nil, err
	}
	b.clients[name] = cachedClient{role: *r, api: api}
	return api, nil
}

// dropClient forgets the cached client of a role.
func (b *backend) dropClient(name string) {
	b.clientsMu.Lock()
	defer b.clientsMu.Unlock()
	delete(b.clients, name)
}

// dropAllClients forgets every cached client.
func (b *backend) dropAllClients() {
	b.clientsMu.Lock()
	defer b.clientsMu.Unlock()
	clear(b.clients)
}

// isPermanentAPIError reports whether retrying the same call later cannot
// help: the API answered with a 4xx other than 408 and rate limiting (a 429,
// or a 400 that says the rate limit was exceeded).
func isPermanentAPIError(err error) bool {
	status := sigsci.StatusCode(err)
	return status >= 400 && status < 500 &&
		status != http.StatusRequestTimeout && !sigsci.IsRateLimited(err)
}

// upstreamError turns an API failure into an error for the Vault caller. A
// 404 from the API stays a 404; every other failure is a 502, because the
// caller's Vault request was fine and the upstream call was not. The message
// carries the API's status and message (never a token or key).
func upstreamError(action string, err error) error {
	msg := fmt.Sprintf("%s: %v", action, err)
	if sigsci.IsNotFound(err) {
		return logical.CodedError(http.StatusNotFound, msg)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return logical.CodedError(http.StatusGatewayTimeout, msg)
	}
	return logical.CodedError(http.StatusBadGateway, msg)
}

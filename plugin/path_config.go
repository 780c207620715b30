package plugin

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const (
	defaultRefreshInterval = 60 * time.Second
	minRefreshInterval     = 5 * time.Second
	maxRefreshInterval     = 24 * time.Hour
)

const pathConfigHelpSyn = `Configure how often readers of stored keys re-read them.`

const pathConfigHelpDesc = `
refresh_interval (default 60s, at least 5s, at most 24h) is returned with every
read of creds/ as "rotation_period" and "ttl" (whole seconds). consul-template
and Vault Agent re-read a secret that has no lease after "ttl" seconds, so a
rotated key reaches every host within about one interval. "ttl" is the
interval shortened by a random 0-10%, so hosts that happen to read in the same
second drift apart instead of re-reading Vault together forever.
`

func (b *backend) pathConfig() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "config$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixSigsci},
		Fields: map[string]*framework.FieldSchema{
			"refresh_interval": {
				Type:        framework.TypeDurationSecond,
				Description: "How often readers should re-read stored keys (e.g. 60s, 2m). Default 60s, minimum 5s.",
				Default:     int(defaultRefreshInterval.Seconds()),
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathConfigRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: "configuration"},
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    b.pathConfigWrite,
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "configure"},
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: pathConfigHelpDesc,
	}}
}

// mountConfig is the stored mount configuration.
type mountConfig struct {
	RefreshInterval time.Duration `json:"refresh_interval"`
}

func (b *backend) loadConfig(ctx context.Context, s logical.Storage) (*mountConfig, error) {
	cfg := &mountConfig{RefreshInterval: defaultRefreshInterval}
	entry, err := s.Get(ctx, configStorageKey)
	if err != nil {
		return nil, fmt.Errorf("reading mount config: %w", err)
	}
	if entry == nil {
		return cfg, nil
	}
	if err := entry.DecodeJSON(cfg); err != nil {
		return nil, fmt.Errorf("decoding mount config: %w", err)
	}
	if cfg.RefreshInterval < minRefreshInterval {
		cfg.RefreshInterval = defaultRefreshInterval
	}
	return cfg, nil
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"refresh_interval": int(cfg.RefreshInterval.Seconds()),
	}}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	seconds := d.Get("refresh_interval").(int)
	interval := time.Duration(seconds) * time.Second
	if interval < minRefreshInterval || interval > maxRefreshInterval {
		return logical.ErrorResponse("refresh_interval must be between %s and %s, got %s",
			minRefreshInterval, maxRefreshInterval, interval), nil
	}
	entry, err := logical.StorageEntryJSON(configStorageKey, &mountConfig{RefreshInterval: interval})
	if err != nil {
		return nil, fmt.Errorf("encoding mount config: %w", err)
	}
	if err := req.Storage.Put(ctx, entry); err != nil {
		return nil, fmt.Errorf("storing mount config: %w", err)
	}
	return nil, nil
}

// refreshHints returns the "rotation_period" and "ttl" values (whole seconds,
// both at least 1) that tell consul-template when to re-read.
func refreshHints(cfg *mountConfig) (rotationPeriod, ttl int) {
	rotationPeriod = int(cfg.RefreshInterval / time.Second)
	jitter := rand.IntN(rotationPeriod/10 + 1) // 0..10% of the interval
	ttl = max(rotationPeriod-jitter, 1)
	return rotationPeriod, ttl
}

package plugin

import (
	"cmp"
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

	defaultFleetStaleAfter  = 30 * time.Minute
	minFleetStaleAfter      = time.Minute
	defaultFleetForgetAfter = 720 * time.Hour
	maxFleetForgetAfter     = 8760 * time.Hour
	maxRetireMinOverlap     = 720 * time.Hour

	defaultPendingMaxAge      = 24 * time.Hour
	minPendingMaxAge          = 10 * time.Minute
	maxPendingMaxAge          = 8760 * time.Hour
	defaultCopyMaxConcurrency = 16
	maxCopyMaxConcurrency     = 64
)

const pathConfigHelpSyn = `Configure how often readers of stored keys re-read them, and how the fleet guards retirement.`

const pathConfigHelpDesc = `
refresh_interval (default 60s, at least 5s, at most 24h) is returned with every
read of creds/ as "rotation_period" and "ttl" (whole seconds). consul-template
and Vault Agent re-read a secret that has no lease after "ttl" seconds, so a
rotated key reaches every host within about one interval. "ttl" is the
interval shortened by a random 0-10%, so hosts that happen to read in the same
second drift apart instead of re-reading Vault together forever.

Hosts report the access key their agent runs under fleet/ (see "vault
path-help <mount>/fleet/<role>/sites/<site>/hosts/<host>"):

fleet_stale_after (default 30m, at least 1m): a host that has not reported
for this long is listed as stale and no longer holds back a retirement.

retire_min_overlap (default 2 x refresh_interval; 0 sets it back to the
default): when no host of a site reports at all (a fleet on stock Vault
Agent), a retirement waits until the newest demoted key set has been
non-primary for this long.

fleet_forget_after (default 720h, longer than fleet_stale_after): the report
of a host not heard from for this long is deleted by a periodic tidy.

pending_max_age (default 24h, 10m to 8760h; 0 sets it back to the default):
a rotation or retirement that Vault could not complete for this long (the
API kept refusing or failing) is given up: it is logged once, no longer
holds up the site's rotations and retirements, and stays listed under
"pending_operations" of rotate/sites/<site> until the next successful
rotate or retire of the site reports it.

copy_max_concurrency (default 16, 1 to 64): the most API calls a copy of all
sites makes at once, and the HTTP connections it keeps open for reuse. The
copy starts lower, grows while the API answers, and shrinks by a quarter
(at most once a second) when the API answers that its rate limit is
exceeded.

A write changes only the fields it names.
`

func (b *backend) pathConfig() []*framework.Path {
	return []*framework.Path{{
		Pattern:      "config$",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixSigsci},
		Fields: map[string]*framework.FieldSchema{
			"refresh_interval":  secondsField("How often readers should re-read stored keys (e.g. 60s, 2m). Default 60s, minimum 5s.", defaultRefreshInterval),
			"fleet_stale_after": secondsField("A host that has not reported for this long is stale: listed, but no longer holding back a retirement. Default 30m, minimum 1m.", defaultFleetStaleAfter),
			"retire_min_overlap": {
				Type:        framework.TypeDurationSecond,
				Description: "When no host of a site reports, how long the newest demoted key set stays before it may be retired. Default (and 0): 2 x refresh_interval.",
			},
			"fleet_forget_after": secondsField("The report of a host not heard from for this long is deleted. Default 720h; longer than fleet_stale_after.", defaultFleetForgetAfter),
			"pending_max_age":    secondsField("An unfinished rotation or retirement older than this is given up: it no longer holds up the site, and stays listed. Default (and 0) 24h; 10m to 8760h.", defaultPendingMaxAge),
			"copy_max_concurrency": {
				Type:        framework.TypeInt,
				Description: "The most API calls a copy of all sites makes at once, and the HTTP connections kept for them. Default 16, 1 to 64.",
				Default:     defaultCopyMaxConcurrency,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathConfigRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: "configuration"},
			},
			logical.UpdateOperation: forwardedOperation(b.pathConfigWrite, &framework.DisplayAttributes{OperationVerb: "configure"}),
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: pathConfigHelpDesc,
	}}
}

// secondsField is a duration field of the config, in seconds or as "60s",
// "2m", with its default.
func secondsField(description string, def time.Duration) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: description, Default: int(def.Seconds())}
}

// mountConfig is the stored mount configuration. A zero fleet or overlap
// duration means its default.
type mountConfig struct {
	RefreshInterval  time.Duration `json:"refresh_interval"`
	FleetStaleAfter  time.Duration `json:"fleet_stale_after,omitempty"`
	RetireMinOverlap time.Duration `json:"retire_min_overlap,omitempty"`
	FleetForgetAfter time.Duration `json:"fleet_forget_after,omitempty"`
	PendingMaxAge    time.Duration `json:"pending_max_age,omitempty"`
	// CopyMaxConcurrency bounds the API calls of a copy of all sites; 0
	// means the default.
	CopyMaxConcurrency int `json:"copy_max_concurrency,omitempty"`
}

// copyMaxConcurrency is the effective copy_max_concurrency.
func (c *mountConfig) copyMaxConcurrency() int {
	return cmp.Or(c.CopyMaxConcurrency, defaultCopyMaxConcurrency)
}

// staleAfter is how long a host's report keeps it in the fleet.
func (c *mountConfig) staleAfter() time.Duration {
	return cmp.Or(c.FleetStaleAfter, defaultFleetStaleAfter)
}

// forgetAfter is how long a host's report is kept at all.
func (c *mountConfig) forgetAfter() time.Duration {
	return cmp.Or(c.FleetForgetAfter, defaultFleetForgetAfter)
}

// pendingMaxAge is how long an unfinished operation holds up its site.
func (c *mountConfig) pendingMaxAge() time.Duration {
	return cmp.Or(c.PendingMaxAge, defaultPendingMaxAge)
}

// retireMinOverlap is how long a demoted set must stay when no host reports.
func (c *mountConfig) retireMinOverlap() time.Duration {
	return cmp.Or(c.RetireMinOverlap, 2*c.RefreshInterval)
}

// configWhat names the mount config in a storage error.
const configWhat = "mount config"

// loadConfig returns the mount config, from memory once read.
func (b *backend) loadConfig(ctx context.Context, s logical.Storage) (*mountConfig, error) {
	if cfg, ok := b.memo.config(); ok {
		return cfg, nil
	}
	gen := b.memo.generation()
	cfg, err := getJSON[mountConfig](ctx, s, configStorageKey, configWhat)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		cfg = &mountConfig{}
	}
	// Unset (0) or below the minimum: the default.
	if cfg.RefreshInterval < minRefreshInterval {
		cfg.RefreshInterval = defaultRefreshInterval
	}
	b.memo.keepConfig(gen, cfg)
	return cfg, nil
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"refresh_interval":     int(cfg.RefreshInterval.Seconds()),
		"fleet_stale_after":    int(cfg.staleAfter().Seconds()),
		"retire_min_overlap":   int(cfg.retireMinOverlap().Seconds()),
		"fleet_forget_after":   int(cfg.forgetAfter().Seconds()),
		"pending_max_age":      int(cfg.pendingMaxAge().Seconds()),
		"copy_max_concurrency": cfg.copyMaxConcurrency(),
	}}, nil
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	b.configMu.Lock()
	defer b.configMu.Unlock()
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if err := mergeConfig(cfg, d); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if err := putJSON(ctx, req.Storage, configStorageKey, configWhat, cfg); err != nil {
		return nil, err
	}
	b.memo.forgetConfig()
	return nil, nil
}

// mergeConfig applies the request's fields to cfg and validates the result.
func mergeConfig(cfg *mountConfig, d *framework.FieldData) error {
	seconds := func(name string, into *time.Duration) {
		if v, ok := d.GetOk(name); ok {
			*into = time.Duration(v.(int)) * time.Second
		}
	}
	seconds("refresh_interval", &cfg.RefreshInterval)
	seconds("fleet_stale_after", &cfg.FleetStaleAfter)
	seconds("retire_min_overlap", &cfg.RetireMinOverlap)
	seconds("fleet_forget_after", &cfg.FleetForgetAfter)
	seconds("pending_max_age", &cfg.PendingMaxAge)
	if v, ok := d.GetOk("copy_max_concurrency"); ok {
		cfg.CopyMaxConcurrency = v.(int)
		if cfg.CopyMaxConcurrency < 1 || cfg.CopyMaxConcurrency > maxCopyMaxConcurrency {
			return fmt.Errorf("copy_max_concurrency must be between 1 and %d, got %d", maxCopyMaxConcurrency, cfg.CopyMaxConcurrency)
		}
	}
	switch {
	case cfg.PendingMaxAge != 0 && (cfg.PendingMaxAge < minPendingMaxAge || cfg.PendingMaxAge > maxPendingMaxAge):
		return fmt.Errorf("pending_max_age must be between %s and %s (0: the default, %s), got %s",
			minPendingMaxAge, maxPendingMaxAge, defaultPendingMaxAge, cfg.PendingMaxAge)
	case cfg.RefreshInterval < minRefreshInterval || cfg.RefreshInterval > maxRefreshInterval:
		return fmt.Errorf("refresh_interval must be between %s and %s, got %s",
			minRefreshInterval, maxRefreshInterval, cfg.RefreshInterval)
	case cfg.FleetStaleAfter != 0 && cfg.FleetStaleAfter < minFleetStaleAfter:
		return fmt.Errorf("fleet_stale_after must be at least %s, got %s", minFleetStaleAfter, cfg.FleetStaleAfter)
	case cfg.RetireMinOverlap < 0 || cfg.RetireMinOverlap > maxRetireMinOverlap:
		return fmt.Errorf("retire_min_overlap must be between 0 (the default, 2 x refresh_interval) and %s, got %s",
			maxRetireMinOverlap, cfg.RetireMinOverlap)
	case cfg.FleetForgetAfter < 0 || cfg.FleetForgetAfter > maxFleetForgetAfter:
		return fmt.Errorf("fleet_forget_after must be at most %s, got %s", maxFleetForgetAfter, cfg.FleetForgetAfter)
	case cfg.forgetAfter() <= cfg.staleAfter():
		return fmt.Errorf("fleet_forget_after (%s) must be longer than fleet_stale_after (%s)", cfg.forgetAfter(), cfg.staleAfter())
	}
	return nil
}

// refreshHints returns the "rotation_period" and "ttl" values (whole seconds,
// both at least 1) that tell consul-template when to re-read.
func refreshHints(cfg *mountConfig) (rotationPeriod, ttl int) {
	rotationPeriod = int(cfg.RefreshInterval / time.Second)
	jitter := rand.IntN(rotationPeriod/10 + 1) // 0..10% of the interval
	ttl = max(rotationPeriod-jitter, 1)
	return rotationPeriod, ttl
}

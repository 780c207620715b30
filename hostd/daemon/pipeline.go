package daemon

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/config"
)

// startPipeline builds the Vault-to-file pipeline for cfg and runs it as one
// part: the authenticator keeps a token, and the renderer (through the Vault
// proxy) writes the templates.
func (d *daemon) startPipeline(ctx context.Context, cfg *config.Config) (*part, error) {
	client, _, err := newVaultClient(cfg.Vault)
	if err != nil {
		return nil, err
	}
	authn, err := auth.New(authOptions(cfg, client, d))
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	d.views.authn.Store(authn)

	return launch(ctx, "pipeline", d.failed, func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return authn.Run(ctx) })
		return g.Wait()
	}), nil
}

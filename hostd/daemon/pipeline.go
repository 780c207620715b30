package daemon

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/report"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
)

// startPipeline builds the Vault-to-file pipeline for cfg and runs it as one
// part: the authenticator keeps a token; once it has one the renderer,
// talking to Vault through the proxy, writes the templates; changed files go
// to the rollout (a part of its own), which restarts their units. Meanwhile
// the rollout compares each unit's running process with its files, as the
// previous pipeline or hostd left them, restarts the units owed one, and
// looks again at what each unit runs every refresh interval. The fleet
// report writes with this pipeline's Vault client and token.
func (d *daemon) startPipeline(ctx context.Context, cfg *config.Config) (*part, error) {
	client, transport, err := newVaultClient(cfg.Vault)
	if err != nil {
		return nil, err
	}
	authn, err := auth.New(authOptions(cfg, client, d))
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	proxy, err := vaultproxy.New(proxyOptions(cfg, transport, authn, d))
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}

	roll := d.cur.rollout
	var renderer *render.Renderer
	if len(cfg.Templates) > 0 {
		renderer, err = render.New(renderOptions(cfg, proxy, roll, d))
		if err != nil {
			proxy.Close()
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	d.reporter.UseWriter(report.NewVaultWriter(client, authn))
	d.views.authn.Store(authn)
	d.views.renderer.Store(renderer)
	d.views.rollout.Store(roll)

	return launch(ctx, "pipeline", d.failed, func(ctx context.Context) error {
		defer proxy.Close()
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return authn.Run(ctx) })
		if renderer != nil {
			g.Go(func() error {
				// Rendering without a token would only collect 403s.
				select {
				case <-authn.Ready():
				case <-ctx.Done():
					return ctx.Err()
				}
				defer d.watchdog.retire(loopRender)
				return renderer.Run(ctx)
			})
		}
		g.Go(func() error {
			roll.Reconcile(ctx, watched(cfg))
			observe(ctx, roll, cfg.TemplateConfig.RefreshInterval)
			return nil
		})
		return g.Wait()
	}), nil
}

// observe has the rollout look at what each unit runs every interval (as
// often as secrets are read), until ctx ends: an agent started by hand
// after hostd left it stopped is then seen, and reported, running its new
// files.
func observe(ctx context.Context, roll *rollout.Rollout, every time.Duration) {
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			roll.Observe(ctx)
		}
	}
}

// watched lists the files each unit reads.
func watched(cfg *config.Config) []rollout.Watched {
	var files []rollout.Watched
	for _, t := range cfg.Templates {
		if t.Unit != "" {
			files = append(files, rollout.Watched{Unit: t.Unit, Destination: t.Destination, Backup: t.Backup})
		}
	}
	return files
}

package daemon

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// startPipeline builds the Vault-to-file pipeline for cfg and runs it as one
// part: the authenticator keeps a token; once it has one the renderer,
// talking to Vault through the proxy, writes the templates; changed files go
// to the rollout, which restarts their units.
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

	var roll *rollout.Rollout
	if d.cur.systemd != nil {
		roll = rollout.New(d.cur.systemd, write.Put, d.sink, rolloutOptions(cfg))
		roll.Submit(d.unfinishedRestarts(cfg)...)
	}
	var renderer *render.Renderer
	if len(cfg.Templates) > 0 {
		renderer, err = render.New(renderOptions(cfg, proxy, roll, d))
		if err != nil {
			proxy.Close()
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
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
				return renderer.Run(ctx)
			})
		}
		if roll != nil {
			g.Go(func() error { return roll.Run(ctx) })
		}
		return g.Wait()
	}), nil
}

// unfinishedRestarts returns the changes whose restart the previous pipeline
// had scheduled but not finished, so a reload does not drop them. The files
// are on disk already; only the restart is owed. A restart cut short by the
// reload is run again, which is the safe side.
func (d *daemon) unfinishedRestarts(cfg *config.Config) []rollout.Change {
	pending := map[string]bool{}
	for _, unit := range d.state.PendingRestarts() {
		pending[unit] = true
	}
	var changes []rollout.Change
	for _, t := range cfg.Templates {
		if t.Unit == "" || !pending[t.Unit] {
			continue
		}
		c := rollout.Change{Unit: t.Unit, Destination: t.Destination}
		if t.Backup {
			// The old pipeline's in-memory previous content is gone; the
			// backup on disk is the best there is (without it, a unit that
			// does not survive this restart cannot be rolled back).
			if prev, err := write.ReadSnapshot(write.BackupPath(t.Destination)); err == nil {
				c.Previous = prev
			}
		}
		changes = append(changes, c)
	}
	return changes
}

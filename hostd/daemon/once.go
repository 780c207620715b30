package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
)

// RenderOnce is `hostd render`: it logs in to Vault with cfg's auto_auth,
// renders every template once through the daemon's own renderer, proxy and
// writer (same validation, atomic write, mode and owner), and returns. It
// restarts no unit and serves neither the status socket nor metrics. ctx
// bounds the whole run, login included.
//
// The secret-id file is kept even with remove_secret_id_file_after_reading:
// the daemon that starts afterwards needs it to log in, and removes it then.
// The outcomes come in configuration order (see render.Renderer.Once); the
// error names every template not written.
func RenderOnce(ctx context.Context, cfg *config.Config, logger *slog.Logger) ([]render.Outcome, error) {
	if len(cfg.Templates) == 0 {
		return nil, fmt.Errorf("%s has no template block: nothing to render", cfg.Path)
	}
	defer render.CaptureStdLog(logger.With("component", "consul-template"))()
	d := &daemon{logger: logger, sink: event.Discard, watchdog: newWatchdog(0, logger)} // no watchdog: nothing to feed

	client, transport, err := newVaultClient(cfg.Vault)
	if err != nil {
		return nil, err
	}
	authOpts := authOptions(cfg, client, d)
	authOpts.RemoveSecretIDFileAfterReading = false
	authn, err := auth.New(authOpts)
	if err != nil {
		return nil, err
	}
	proxy, err := vaultproxy.New(proxyOptions(cfg, transport, authn, d))
	if err != nil {
		return nil, err
	}
	defer proxy.Close()
	renderer, err := render.New(renderOptions(cfg, proxy, nil, d))
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithCancel(ctx)
	authDone := make(chan struct{})
	go func() {
		defer close(authDone)
		authn.Run(ctx)
	}()
	defer func() {
		cancel()
		<-authDone
	}()
	select {
	case <-authn.Ready():
	case <-ctx.Done():
		why := authn.State().LastError
		if why == "" {
			why = "no answer from Vault"
		}
		return nil, fmt.Errorf("not logged in to Vault with %s auth (%v): %s", cfg.AutoAuth.Method, context.Cause(ctx), why)
	}
	return renderer.Once(ctx)
}

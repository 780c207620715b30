// Package daemon runs hostd: it builds the pipeline from the configuration
// (auth → vaultproxy → render/write → rollout/restart → metrics/status),
// serves the status socket and the metrics endpoint, applies a new
// configuration on SIGHUP, and reports to systemd (READY, RELOADING,
// STOPPING, WATCHDOG).
//
// It owns wiring and lifecycle only. Logging in, rendering, writing,
// restarting and counting belong to the packages that do them; this package
// maps the configuration onto their options and starts and stops them.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/metrics"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
)

// Option changes how Run runs; the defaults suit a systemd service.
type Option func(*options)

type options struct {
	level    *slog.LevelVar
	notifier Notifier
	reload   <-chan struct{}
	load     func(path string) (*config.Config, error)
}

// WithLogLevel gives Run the level variable of its logger (see NewLogger),
// so a reload can change the level.
func WithLogLevel(level *slog.LevelVar) Option { return func(o *options) { o.level = level } }

// WithNotifier replaces the systemd notifier.
func WithNotifier(n Notifier) Option { return func(o *options) { o.notifier = n } }

// WithReload makes Run reload its configuration on every receive from ch
// instead of on SIGHUP.
func WithReload(ch <-chan struct{}) Option { return func(o *options) { o.reload = ch } }

// Run runs hostd with cfg until ctx is done, then stops everything it
// started and returns nil. It returns an error when a part cannot start or
// stops on its own. cfg.Path is re-read on SIGHUP; a configuration with
// problems is logged and ignored, and the running one stays.
func Run(ctx context.Context, cfg *config.Config, logger *slog.Logger, version string, opts ...Option) error {
	o := options{notifier: systemdNotifier{}, load: config.Load}
	for _, opt := range opts {
		opt(&o)
	}
	if o.reload == nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		o.reload = forward(ctx, hup)
	}
	// consul-template logs through the standard log package.
	defer render.CaptureStdLog(logger.With("component", "consul-template"))()
	d := newDaemon(o, logger, version, cfg)
	return d.run(ctx, cfg)
}

// forward turns signals into reload requests until ctx is done.
func forward(ctx context.Context, sigs <-chan os.Signal) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-sigs:
				select {
				case out <- struct{}{}:
				default: // a reload is already queued
				}
			}
		}
	}()
	return out
}

type daemon struct {
	opts    options
	logger  *slog.Logger
	version string

	state   *status.State
	metrics *metrics.Metrics
	ready   *readiness
	sink    event.Sink
	views   *liveViews

	failed    chan partFailure
	cur       running
	readySent bool // READY=1 was sent (touched by the main loop only) // what runs now, and the configuration each part runs with
}

func newDaemon(o options, logger *slog.Logger, version string, cfg *config.Config) *daemon {
	d := &daemon{
		opts:    o,
		logger:  logger,
		version: version,
		ready:   newReadiness(destinations(cfg)),
		views:   &liveViews{},
		failed:  make(chan partFailure, 8),
	}
	d.state = status.NewState(d.statusOptions(cfg))
	d.metrics = metrics.New(version)
	d.sink = event.Fanout{d.state, d.metrics, d.ready, restartLog{logger.With("component", "rollout")}}
	return d
}

func (d *daemon) run(ctx context.Context, cfg *config.Config) error {
	d.logger.Info("hostd starting", "version", d.version, "config", cfg.Path, "vault", cfg.Vault.Address, "auth", cfg.AutoAuth.Method, "templates", len(cfg.Templates))
	d.logWarnings(cfg)
	if err := CheckTemplates(cfg); err != nil {
		// Each broken template is left out and reported as failing; the
		// others render.
		for _, line := range strings.Split(err.Error(), "\n") {
			d.logger.Error("template cannot render: " + line)
		}
	}
	d.notify(statusLine("starting"))
	d.removeLeftovers(cfg)
	if err := d.startAll(ctx, cfg); err != nil {
		d.stopAll()
		return err
	}
	d.reportReload(true)
	d.notify(statusLine(fmt.Sprintf("waiting for %d template(s) to render", d.ready.pending())))

	readyC := d.ready.C
	var watchdog <-chan time.Time
	if interval := d.opts.notifier.WatchdogInterval(); interval > 0 {
		ticker := time.NewTicker(interval / 2)
		defer ticker.Stop()
		watchdog = ticker.C
		d.notify(notifyWatchdog)
	}
	for {
		select {
		case <-ctx.Done():
			d.logger.Info("hostd stopping")
			d.notify(notifyStopping)
			d.stopAll()
			return nil
		case <-readyC:
			readyC = nil
			d.readySent = true
			d.logger.Info("hostd ready: every template has been rendered once")
			d.notify(notifyReady + "\n" + statusLine("ready"))
		case <-d.opts.reload:
			d.reload(ctx)
		case <-watchdog:
			d.notify(notifyWatchdog)
		case f := <-d.failed:
			d.logger.Error("hostd part stopped; shutting down", "part", f.name, "err", f.err)
			d.notify(notifyStopping)
			d.stopAll()
			return fmt.Errorf("%s: %w", f.name, f.err)
		}
	}
}

func (d *daemon) notify(state string) {
	if err := d.opts.notifier.Notify(state); err != nil {
		d.logger.Warn("sd_notify failed", "err", err)
	}
}

func (d *daemon) logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		d.logger.Warn("configuration: " + w.String())
	}
}

func (d *daemon) statusOptions(cfg *config.Config) status.Options {
	refs := make([]status.TemplateRef, len(cfg.Templates))
	for i, t := range cfg.Templates {
		refs[i] = status.TemplateRef{Destination: t.Destination, Unit: t.Unit}
	}
	return status.Options{
		Version:      d.version,
		VaultAddress: cfg.Vault.Address,
		AuthMethod:   cfg.AutoAuth.Method,
		Templates:    refs,
		VaultGrace:   2 * cfg.TemplateConfig.RefreshInterval,
		AuthState:    d.views.auth,
		UnitState:    d.views.unitState,
	}
}

func destinations(cfg *config.Config) []string {
	out := make([]string, len(cfg.Templates))
	for i, t := range cfg.Templates {
		out[i] = t.Destination
	}
	return out
}

// Package daemon runs hostd: it builds the pipeline from the configuration
// (auth → vaultproxy → render/write → rollout/restart → the fleet report to
// Vault, metrics, status), serves the status socket and the metrics
// endpoint, applies a new configuration on every reload request (main turns
// SIGHUP into one), and reports to systemd (READY, RELOADING, STOPPING,
// WATCHDOG). It installs no signal handler.
//
// READY=1 means hostd runs (configuration loaded, status socket and
// pipeline started), not that Vault answered: a host booted during a Vault
// outage keeps hostd up, and it renders as soon as Vault is back. Whether
// hostd is authenticated and has rendered are health facts, in `hostd
// status` and the metrics. The watchdog is fed from the progress of the
// main, render and rollout loops (watchdog.go), and no loop waits on a
// restart batch: a reload hands the batches to the new rollout, and a stop
// gives them a grace period and leaves the rest to the next start (the
// rollout's state in the state directory, $STATE_DIRECTORY).
//
// It owns wiring and lifecycle only. Logging in, rendering, writing,
// restarting and counting belong to the packages that do them; this package
// maps the configuration onto their options and starts and stops them.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/metrics"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/report"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
)

// Run runs hostd with cfg until ctx is done, then stops everything it
// started and returns nil. It returns an error when a part cannot start or
// stops on its own. Every receive from reload re-reads cfg.Path; a
// configuration with problems is logged and ignored, and the running one
// stays.
func Run(ctx context.Context, cfg *config.Config, logger *slog.Logger, version string, reload <-chan struct{}, opts ...Option) error {
	o := options{notifier: systemdNotifier{}, load: config.Load, stateDir: stateDirectory(), reload: reload}
	for _, opt := range opts {
		opt(&o)
	}
	// consul-template logs through the standard log package.
	defer render.CaptureStdLog(logger.With("component", "consul-template"))()
	d := newDaemon(o, logger, version, cfg)
	return d.run(ctx, cfg)
}

type daemon struct {
	opts    options
	logger  *slog.Logger
	version string

	state    *status.State
	metrics  *metrics.Metrics
	rendered *firstRender
	sink     event.Sink
	views    *liveViews
	tracker  *running.Tracker
	reporter *report.Reporter
	watchdog *watchdog

	failed chan partFailure
	cur    liveParts // what runs now, and the configuration each part runs with
}

func newDaemon(o options, logger *slog.Logger, version string, cfg *config.Config) *daemon {
	d := &daemon{
		opts:     o,
		logger:   logger,
		version:  version,
		rendered: newFirstRender(destinations(cfg)),
		views:    &liveViews{},
		failed:   make(chan partFailure, 8),
		tracker:  running.New(o.stateDir, logger.With("component", "running")),
		watchdog: newWatchdog(o.notifier.WatchdogInterval(), logger.With("component", "watchdog")),
	}
	d.state = status.NewState(d.statusOptions(cfg))
	d.metrics = metrics.New(metrics.Options{Version: version})
	d.reporter = report.New(report.Options{
		Settings: reportSettings(cfg, version),
		StateDir: o.stateDir,
		Reporting: stage.Reporting{
			Sink:   event.Fanout{d.state, d.metrics},
			Logger: logger.With("component", "report"),
		},
	})
	d.sink = event.Fanout{d.state, d.metrics, d.rendered, restartLog{logger.With("component", "rollout")}, d.reporter}
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
	if d.opts.stateDir == "" {
		d.logger.Info("no state directory ($STATE_DIRECTORY): a restart under way is not remembered across a restart of hostd")
	}
	if err := d.startAll(ctx, cfg); err != nil {
		d.stopAll()
		return err
	}
	d.reportReload(true)
	// Running is ready: whether Vault answers is a health fact.
	d.logger.Info("hostd ready", "templates_waiting", d.rendered.pending())
	d.notify(notifyReady + "\n" + statusLine(d.renderStatus()))

	watchdogCtx, stopWatchdog := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatchdog()
	go d.watchdog.run(watchdogCtx, d.notify)
	var heartbeat <-chan time.Time
	beat := d.watchdog.beater(loopMain)
	if beat != nil {
		ticker := time.NewTicker(d.watchdog.period())
		defer ticker.Stop()
		heartbeat = ticker.C
		beat()
	}
	renderedC := d.rendered.C
	for {
		select {
		case <-ctx.Done():
			d.logger.Info("hostd stopping")
			d.stop()
			return nil
		case <-renderedC:
			renderedC = nil
			d.logger.Info("every template has been rendered once")
			d.notify(statusLine(d.renderStatus()))
		case <-d.opts.reload:
			d.reload(ctx)
		case <-heartbeat:
			beat()
		case f := <-d.failed:
			d.logger.Error("hostd part stopped; shutting down", "part", f.name, "err", f.err)
			d.stop()
			return fmt.Errorf("%s: %w", f.name, f.err)
		}
	}
}

// stop stops every part. The watchdog keeps being fed meanwhile: stopping
// is progress (the rollout loop still beats while it waits for a restart).
func (d *daemon) stop() {
	d.watchdog.retire(loopMain)
	d.notify(notifyStopping)
	d.stopAll()
}

// renderStatus is the STATUS= text for how far rendering is.
func (d *daemon) renderStatus() string {
	if n := d.rendered.pending(); n > 0 {
		return fmt.Sprintf("running; waiting for %d template(s) to render", n)
	}
	return "running; every template rendered"
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

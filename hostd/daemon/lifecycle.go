package daemon

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
)

// liveParts is what runs now, with the configuration each part was started
// with, so a reload restarts only the parts whose configuration changed.
type liveParts struct {
	path      string
	logFormat string

	// pipelineCfg is the configuration the pipeline was started with, as
	// it was loaded: a reload whose pipeline fails to start restarts it.
	pipeline    *part
	pipelineCfg *config.Config

	// The rollout outlives a pipeline: a reload hands its batches to the
	// next one (rollout.go).
	systemd     *restart.LazyConn
	restartCfg  config.Restart
	rollout     *rollout.Rollout
	rolloutPart *part

	status    *part
	statusCfg config.Status

	telemetry     *part
	telemetryAddr string

	// The fleet report outlives a pipeline too: each pipeline gives it
	// its Vault client and token.
	reportPart *part
	reportCfg  config.Report
}

// samePipeline reports whether a and b build the same Vault-to-file
// pipeline. Templates compare with their text (config reads each source file
// when it loads), so an edited agent.ctmpl rebuilds the pipeline on SIGHUP
// like an edited hostd.hcl.
func samePipeline(a, b *config.Config) bool {
	return a.Vault == b.Vault && a.AutoAuth == b.AutoAuth && a.TemplateConfig == b.TemplateConfig &&
		slices.Equal(a.Templates, b.Templates)
}

func (d *daemon) startAll(ctx context.Context, cfg *config.Config) error {
	d.cur.path = cfg.Path
	d.cur.logFormat = cfg.Log.Format
	d.cur.restartCfg = cfg.Restart
	d.cur.systemd = newSystemd(cfg.Restart)
	d.views.systemd.Store(d.cur.systemd)
	d.cur.rollout = d.newRollout(cfg, d.cur.systemd)
	d.cur.rolloutPart = d.startRollout(ctx, d.cur.rollout)
	d.cur.reportPart, d.cur.reportCfg = launch(ctx, "fleet report", d.failed, d.reporter.Run), cfg.Report

	p, err := d.startPipeline(ctx, cfg)
	if err != nil {
		return err
	}
	d.cur.pipeline, d.cur.pipelineCfg = p, cfg

	s, err := d.startStatus(ctx, cfg.Status)
	if err != nil {
		return err
	}
	d.cur.status, d.cur.statusCfg = s, cfg.Status

	t, err := d.startTelemetry(ctx, cfg.Telemetry.ListenAddress)
	if err != nil {
		return err
	}
	d.cur.telemetry, d.cur.telemetryAddr = t, cfg.Telemetry.ListenAddress
	return nil
}

// stopAll stops every part, the last started first. Stopping the rollout
// waits for a restart under way, its stop grace at most.
func (d *daemon) stopAll() {
	d.cur.reportPart.stop()
	d.cur.telemetry.stop()
	d.cur.status.stop()
	d.cur.pipeline.stop()
	d.cur.rolloutPart.stop()
	d.cur.systemd.Close()
}

// reload reads the configuration file again and applies it. A file with
// problems changes nothing.
func (d *daemon) reload(ctx context.Context) {
	d.logger.Info("reloading configuration", "config", d.cur.path)
	d.notify(reloading() + "\n" + statusLine("reloading configuration"))
	defer d.notify(notifyReady)

	cfg, err := d.opts.load(d.cur.path)
	if err == nil {
		err = CheckTemplates(cfg)
	}
	if err != nil {
		d.logReloadError(err)
		d.reportReload(false)
		d.notify(statusLine("configuration reload failed; running the previous configuration"))
		return
	}
	d.logWarnings(cfg)
	d.apply(ctx, cfg)
	d.reportReload(d.runsWith(cfg))
	d.notify(statusLine("configuration reloaded"))
}

func (d *daemon) logReloadError(err error) {
	var cfgErr *config.Error
	if errors.As(err, &cfgErr) {
		for _, p := range cfgErr.Problems {
			d.logger.Error("configuration reload rejected: " + p.String())
		}
	} else {
		for _, line := range strings.Split(err.Error(), "\n") {
			d.logger.Error("configuration reload rejected: " + line)
		}
	}
	d.logger.Error("still running the previous configuration")
}

// apply moves the running parts to cfg. A part that cannot start with its
// new configuration keeps running with the old one (logged), and the next
// reload tries again.
func (d *daemon) apply(ctx context.Context, cfg *config.Config) {
	changed := false
	if d.opts.level != nil {
		if lvl := parseLevel(cfg.Log.Level); d.opts.level.Level() != lvl {
			d.opts.level.Set(lvl)
			d.logger.Info("log level changed", "level", cfg.Log.Level)
			changed = true
		}
	}
	if cfg.Log.Format != d.cur.logFormat {
		d.logger.Warn("log format changes take effect at the next start", "format", cfg.Log.Format)
	}

	if !samePipeline(cfg, d.cur.pipelineCfg) || !sameRestart(cfg.Restart, d.cur.restartCfg) {
		changed = true
		d.replacePipeline(ctx, cfg)
	}
	if cfg.Status != d.cur.statusCfg {
		changed = true
		d.replaceStatus(ctx, cfg.Status)
	}
	if cfg.Telemetry.ListenAddress != d.cur.telemetryAddr {
		changed = true
		d.replaceTelemetry(ctx, cfg.Telemetry.ListenAddress)
	}
	if cfg.Report != d.cur.reportCfg {
		changed = true
		d.reporter.Configure(reportSettings(cfg, d.version))
		d.cur.reportCfg = cfg.Report
	}
	d.state.Reconfigure(d.statusOptions(cfg))
	d.rendered.expect(destinations(cfg))
	if !changed {
		d.logger.Info("configuration unchanged")
	}
}

// replacePipeline stops the old pipeline before starting the new one, so two
// renderers never write the same file. It does not wait for a restart under
// way: the old rollout hands it, and the batches waiting, to the new one.
func (d *daemon) replacePipeline(ctx context.Context, cfg *config.Config) {
	d.cur.pipeline.stop()
	d.replaceRollout(ctx, cfg)

	start := func(c *config.Config) (*part, error) { return d.startPipeline(ctx, c) }
	var moved bool
	d.cur.pipeline, d.cur.pipelineCfg, moved = restartPart(d, "pipeline", "new configuration failed to start; restarting the previous pipeline",
		start, cfg, d.cur.pipelineCfg)
	if moved {
		d.logger.Info("pipeline restarted with the new configuration")
	}
}

// fail stops the daemon because a part cannot run at all.
func (d *daemon) fail(name string, err error) {
	select {
	case d.failed <- partFailure{name: name, err: err}:
	default:
	}
}

// sameRestart compares restart settings; locations compare by name.
func sameRestart(a, b config.Restart) bool {
	if a.Bus != b.Bus || a.Debounce != b.Debounce || a.Splay != b.Splay || a.JobTimeout != b.JobTimeout || a.ActiveTimeout != b.ActiveTimeout ||
		a.StableFor != b.StableFor || a.RetryRejectedAfter != b.RetryRejectedAfter || !reflect.DeepEqual(a.Check, b.Check) {
		return false
	}
	if (a.Window == nil) != (b.Window == nil) {
		return false
	}
	if a.Window == nil {
		return true
	}
	return a.Window.Start == b.Window.Start && a.Window.End == b.Window.End && a.Window.Location.String() == b.Window.Location.String()
}

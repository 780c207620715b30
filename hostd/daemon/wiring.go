package daemon

import (
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/report"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaultproxy"
)

// This file holds how Run is wired: its Options, and the mapping of the
// configuration onto each package's own options, so no package but this one
// depends on hostd/config's layout.

// Option changes how Run runs; the defaults suit a systemd service.
type Option func(*options)

type options struct {
	level     *slog.LevelVar
	notifier  Notifier
	reload    <-chan struct{}
	load      func(path string) (*config.Config, error)
	stateDir  string
	stopGrace time.Duration
}

// WithLogLevel gives Run the level variable of its logger (see NewLogger),
// so a reload can change the level.
func WithLogLevel(level *slog.LevelVar) Option { return func(o *options) { o.level = level } }

// WithNotifier replaces the systemd notifier.
func WithNotifier(n Notifier) Option { return func(o *options) { o.notifier = n } }

// WithStateDirectory makes Run keep its state (what each unit runs on, the
// restart under way) in dir instead of $STATE_DIRECTORY, which systemd sets
// from StateDirectory=. Without either, the state lives in memory only.
func WithStateDirectory(dir string) Option { return func(o *options) { o.stateDir = dir } }

// WithStopGrace sets how long a stop waits for a restart under way
// (default rollout.DefaultStopGrace).
func WithStopGrace(d time.Duration) Option { return func(o *options) { o.stopGrace = d } }

// stateDirectory is the first directory of $STATE_DIRECTORY.
func stateDirectory() string {
	dir, _, _ := strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
	return dir
}

func authOptions(cfg *config.Config, client *api.Client, d *daemon) auth.Options {
	a := cfg.AutoAuth
	return auth.Options{
		Client:                         client,
		Method:                         a.Method,
		MountPath:                      a.MountPath,
		RoleIDFile:                     a.RoleIDFile,
		SecretIDFile:                   a.SecretIDFile,
		RemoveSecretIDFileAfterReading: a.RemoveSecretIDFileAfterReading,
		SecretIDResponseWrappingPath:   a.SecretIDResponseWrappingPath,
		CertName:                       a.CertName,
		TLS:                            vaultTLS(cfg.Vault),
		Role:                           a.Role,
		JWTFile:                        a.JWTFile,
		TokenFile:                      a.TokenFile,
		MaxBackoff:                     cfg.TemplateConfig.MaxBackoff,
		Reporting:                      d.reporting("auth"),
	}
}

// reporting is where the stage named component reports: the daemon's sink,
// and its logger marked with the component.
func (d *daemon) reporting(component string) stage.Reporting {
	return stage.Reporting{Sink: d.sink, Logger: d.logger.With("component", component)}
}

func proxyOptions(cfg *config.Config, transport *http.Transport, tokens vaultproxy.TokenSource, d *daemon) vaultproxy.Options {
	return vaultproxy.Options{
		Upstream:        cfg.Vault.Address,
		Transport:       transport,
		Namespace:       cfg.Vault.Namespace,
		Tokens:          tokens,
		RefreshInterval: cfg.TemplateConfig.RefreshInterval,
		Reporting:       d.reporting("vaultproxy"),
	}
}

// renderTemplates maps the configured templates onto render's. Each is
// given its text, which config read from the source file: the renderer
// reads no file of its own, so what was checked is what renders.
func renderTemplates(cfg *config.Config) []render.Template {
	out := make([]render.Template, len(cfg.Templates))
	for i, t := range cfg.Templates {
		out[i] = render.Template{
			Contents:          t.Contents,
			Destination:       t.Destination,
			Perms:             t.Perms,
			User:              t.User,
			Group:             t.Group,
			ErrorOnMissingKey: t.ErrorOnMissingKey,
			Backup:            t.Backup,
			Unit:              t.Unit,
		}
	}
	return out
}

// renderOptions wires the renderer to the proxy (its path to Vault, and
// what it saw of the creds secrets' access keys) and the rollout.
func renderOptions(cfg *config.Config, proxy *vaultproxy.Proxy, roll *rollout.Rollout, d *daemon) render.Options {
	o := render.Options{
		Templates:         renderTemplates(cfg),
		Dialer:            proxy,
		Keys:              proxy,
		RefreshInterval:   cfg.TemplateConfig.RefreshInterval,
		MaxBackoff:        cfg.TemplateConfig.MaxBackoff,
		Reporting:         d.reporting("render"),
		Heartbeat:         d.watchdog.beater(loopRender),
		HeartbeatInterval: d.watchdog.period(),
	}
	if roll != nil { // nil for a one-shot render: nothing is restarted
		o.Refuse = roll.Refuse
		o.OnChange = func(changes []render.Change) {
			roll.Submit(rolloutChanges(changes)...) // never blocks
		}
	}
	return o
}

// rolloutChanges maps the renderer's changed files onto the rollout's.
func rolloutChanges(changes []render.Change) []rollout.Change {
	out := make([]rollout.Change, len(changes))
	for i, c := range changes {
		out[i] = rollout.Change{Unit: c.Unit, Destination: c.Destination, Previous: c.Previous}
	}
	return out
}

func rolloutOptions(cfg *config.Config) rollout.Options {
	r := cfg.Restart
	o := rollout.Options{
		Debounce:           r.Debounce,
		Splay:              r.Splay,
		ActiveTimeout:      r.ActiveTimeout,
		StableFor:          r.StableFor,
		MaxRetry:           cfg.TemplateConfig.MaxBackoff,
		RetryRejectedAfter: r.RetryRejectedAfter,
		Units:              []string{}, // none unless a template names one
	}
	for _, t := range cfg.Templates {
		if t.Unit != "" && !slices.Contains(o.Units, t.Unit) {
			o.Units = append(o.Units, t.Unit)
		}
	}
	if r.Window != nil {
		o.Window = &rollout.Window{Start: r.Window.Start, End: r.Window.End, Location: r.Window.Location}
	}
	if r.Check != nil {
		o.Check = &rollout.Check{Command: r.Check.Command, Timeout: r.Check.Timeout}
	}
	return o
}

// reportSettings maps the report block onto the fleet report's settings.
func reportSettings(cfg *config.Config, version string) report.Settings {
	r := cfg.Report
	return report.Settings{Enabled: r.Enabled, Host: r.Host, Interval: r.Interval, Version: version}
}

func restartOptions(cfg config.Restart) restart.Options {
	return restart.Options{Bus: cfg.Bus, JobTimeout: cfg.JobTimeout}
}

// newSystemd returns the connection to systemd for cfg. It dials only when
// first used: without a template naming a unit, never.
func newSystemd(cfg config.Restart) *restart.LazyConn {
	return restart.NewLazyConn(restartOptions(cfg))
}

// CheckTemplates reports every template in cfg that cannot render whatever
// Vault returns (syntax errors, functions hostd refuses, unreadable source).
// `hostd validate` and a reload run it before anything changes.
func CheckTemplates(cfg *config.Config) error {
	return render.Validate(renderTemplates(cfg))
}

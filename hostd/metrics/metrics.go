// Package metrics turns hostd's events into Prometheus metrics and serves
// them.
//
// It owns a private registry (never the global one) with every hostd_ metric,
// declared here with its help text, and the HTTP handler exposing it. It only
// consumes events: it never calls back into auth, render or rollout. Error
// texts are never used as label values, so nothing an error says (let alone a
// secret) reaches the exposition; labels are the auth method, HTTP status
// codes, template destinations, unit names, outcomes from a fixed set (result)
// and hostd's own version, all few per host. When a reload removes a template
// or a unit, its series are deleted. The fleet report's metrics (fleet.go) also
// label sites and access key ids: identifiers, one or two key ids per site at a
// time.
package metrics

import (
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

const namespace = "hostd"

// RestartDurationBuckets spans a quick restart of a Type=simple unit (tens of
// milliseconds) to the default job timeout (90s).
var RestartDurationBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// Metrics is an event.Sink that keeps hostd's metrics. Safe for concurrent
// use.
type Metrics struct {
	reg *prometheus.Registry
	now func() time.Time

	authAttempts    *prometheus.CounterVec
	authenticatedFn prometheus.GaugeFunc
	tokenExpiry     prometheus.Gauge
	vaultRequests   *prometheus.CounterVec
	vaultErrors     prometheus.Counter
	renders         *prometheus.CounterVec
	lastRender      *prometheus.GaugeVec
	lastRenderOK    *prometheus.GaugeVec
	lastChange      *prometheus.GaugeVec
	restarts        *prometheus.CounterVec
	restartDuration *prometheus.HistogramVec
	rollbacks       *prometheus.CounterVec
	restartPending  *prometheus.GaugeVec
	restartDue      *prometheus.GaugeVec
	reloadOK        prometheus.Gauge
	reloadSuccess   prometheus.Gauge
	fleet           *fleetMetrics

	mu          sync.Mutex
	authOK      bool      // the last login or renewal that decided it succeeded
	authExpiry  time.Time // expiry of the token it got; zero: none known
	lastPending map[string]time.Time
	// The template and unit label values in use, so a reload can delete
	// the series of those it removed.
	templates, units map[string]bool
}

// Options configures Metrics.
type Options struct {
	Version string           // hostd's version, for hostd_build_info
	Now     func() time.Time // the scrape time of the time-based gauges; default time.Now
}

// New returns Metrics with the Go runtime and process collectors (memory,
// file descriptors) registered too.
func New(opts Options) *Metrics {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Metrics{
		reg:         prometheus.NewRegistry(),
		now:         opts.Now,
		lastPending: make(map[string]time.Time),
		templates:   make(map[string]bool),
		units:       make(map[string]bool),
		fleet:       newFleetMetrics(),

		authAttempts: newCounterVec("auth_attempts_total",
			"Vault logins and token renewals, by auth method and result (success or failure).",
			"method", "result"),
		tokenExpiry: newGauge("token_expiry_timestamp_seconds",
			"When hostd's current Vault token expires (Unix time); 0 when it has no expiry or none is known."),
		vaultRequests: newCounterVec("vault_requests_total",
			"Requests the template engine made to Vault that got an answer, by HTTP status code.",
			"code"),
		vaultErrors: newCounter("vault_request_errors_total",
			"Requests the template engine made to Vault that got no answer (connection or TLS errors)."),
		renders: newCounterVec("template_renders_total",
			"Template renders by destination and result: changed, unchanged or error (the old file stays).",
			"template", "result"),
		lastRender: newGaugeVec("template_last_render_timestamp_seconds",
			"When the template last rendered without error (Unix time).",
			"template"),
		lastRenderOK: newGaugeVec("template_last_render_successful",
			"1 when the template's last render succeeded, 0 when it failed (the old file stays).",
			"template"),
		lastChange: newGaugeVec("template_last_change_timestamp_seconds",
			"When the template's destination last got new content (Unix time).",
			"template"),
		restarts: newCounterVec("unit_restarts_total",
			"Unit restarts after a change, by result: done, systemd's job results, unhealthy, error, rolled_back, rollback_failed.",
			"unit", "result"),
		restartDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "unit_restart_duration_seconds",
			Help:    "Time from asking systemd to restart a unit until it was judged healthy or failed.",
			Buckets: RestartDurationBuckets,
		}, []string{"unit"}),
		rollbacks: newCounterVec("unit_rollbacks_total",
			"Changes a unit did not survive, whose previous files were restored.",
			"unit"),
		restartPending: newGaugeVec("unit_restart_pending",
			"1 while a restart of the unit is scheduled (debounce, splay or maintenance window), else 0.",
			"unit"),
		restartDue: newGaugeVec("unit_restart_due_timestamp_seconds",
			"When the unit's scheduled restart is due (Unix time), after debounce, splay and maintenance window; 0 while none is scheduled.",
			"unit"),
		// Named as Prometheus names its own.
		reloadOK: newGauge("config_last_reload_successful",
			"1 if the last configuration load (the start or the latest reload) was applied, 0 if it was rejected or applied only in part."),
		reloadSuccess: newGauge("config_last_reload_success_timestamp_seconds",
			"When the configuration was last loaded and applied, at the start or on a reload (Unix time)."),
	}
	buildInfo := newGaugeVec("build_info",
		"Always 1; labels say which hostd is running.",
		"version", "goversion")
	buildInfo.WithLabelValues(opts.Version, runtime.Version()).Set(1)
	m.authenticatedFn = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: namespace, Name: "authenticated",
		Help: "1 while hostd holds a Vault token that has not expired, else 0.",
	}, m.authenticated)

	m.reg.MustRegister(
		buildInfo, m.authenticatedFn,
		m.authAttempts, m.tokenExpiry, m.vaultRequests, m.vaultErrors,
		m.renders, m.lastRender, m.lastRenderOK, m.lastChange,
		m.restarts, m.restartDuration, m.rollbacks, m.restartPending, m.restartDue,
		m.reloadOK, m.reloadSuccess,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	m.reg.MustRegister(m.fleet.collectors()...)
	return m
}

// The constructors of hostd's metrics: each in namespace, with the name and
// help text its caller declares, and labels for a vector.

func newCounter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
}

func newCounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

func newGauge(name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
}

func newGaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help}, labels)
}

// Registry is the registry holding hostd's metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Publish implements event.Sink.
func (m *Metrics) Publish(e event.Event) {
	switch e := e.(type) {
	case event.Auth:
		m.auth(e)
	case event.VaultRequest:
		m.vaultRequest(e)
	case event.Render:
		m.render(e)
	case event.Restart:
		m.restart(e)
	case event.Pending:
		m.pending(e)
	case event.Reload:
		m.reload(e)
	case event.Report:
		m.fleet.report(e)
	case event.AgentKeys:
		m.fleet.agentKeys(e)
	}
}

func (m *Metrics) auth(e event.Auth) {
	result := "success"
	if !e.OK {
		result = "failure"
	}
	m.authAttempts.WithLabelValues(e.Method, result).Inc()

	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case e.OK:
		m.authOK, m.authExpiry = true, e.TokenExpiry
		m.tokenExpiry.Set(unixSeconds(e.TokenExpiry))
	case !e.Renewal || e.Rejected:
		// A failed renewal leaves the token valid until it expires; a
		// failed login, or a token Vault rejected, leaves none.
		m.authOK = false
		m.tokenExpiry.Set(0)
	}
}

// authenticated is read at scrape time, so a token that expires without
// any further event still turns the gauge to 0.
func (m *Metrics) authenticated() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.authOK && (m.authExpiry.IsZero() || m.now().Before(m.authExpiry)) {
		return 1
	}
	return 0
}

func (m *Metrics) vaultRequest(e event.VaultRequest) {
	if e.StatusCode == 0 {
		m.vaultErrors.Inc()
		return
	}
	m.vaultRequests.WithLabelValues(strconv.Itoa(e.StatusCode)).Inc()
}

func (m *Metrics) render(e event.Render) {
	m.inUse(m.templates, e.Template)
	if e.Unit != "" {
		m.unitSeen(e.Unit)
	}
	switch {
	case e.Err != "":
		m.renders.WithLabelValues(e.Template, "error").Inc()
		m.lastRenderOK.WithLabelValues(e.Template).Set(0)
		return
	case e.Changed:
		m.renders.WithLabelValues(e.Template, "changed").Inc()
		m.lastChange.WithLabelValues(e.Template).Set(unixSeconds(e.Time))
	default:
		m.renders.WithLabelValues(e.Template, "unchanged").Inc()
	}
	m.lastRender.WithLabelValues(e.Template).Set(unixSeconds(e.Time))
	m.lastRenderOK.WithLabelValues(e.Template).Set(1)
}

// unitSeen exposes a unit's rollback counter and restart gauges at 0 from
// the first render of a template feeding it, before anything happens to it:
// a counter that first appears already at 1 shows no increase to
// Prometheus, and an alert on increase() would miss the unit's first
// rollback.
func (m *Metrics) unitSeen(unit string) {
	m.inUse(m.units, unit)
	m.rollbacks.WithLabelValues(unit)
	m.restartPending.WithLabelValues(unit)
	m.restartDue.WithLabelValues(unit)
}

func (m *Metrics) restart(e event.Restart) {
	m.unitSeen(e.Unit)
	m.restarts.WithLabelValues(e.Unit, e.Result).Inc()
	// An attempt that queued no job took no restart time: its D-Bus call
	// latency stays out of the distribution (it is counted above).
	if e.Duration > 0 && e.Result != event.ResultError {
		m.restartDuration.WithLabelValues(e.Unit).Observe(e.Duration.Seconds())
	}
	if e.RolledBack {
		m.rollbacks.WithLabelValues(e.Unit).Inc()
	}

	// The restart ends the batch it started with; a Pending published
	// after that start belongs to the next batch, which is still waiting.
	m.mu.Lock()
	defer m.mu.Unlock()
	if last, ok := m.lastPending[e.Unit]; ok && last.After(e.Began()) {
		return
	}
	m.restartPending.WithLabelValues(e.Unit).Set(0)
	m.restartDue.WithLabelValues(e.Unit).Set(0)
}

func (m *Metrics) pending(e event.Pending) {
	m.unitSeen(e.Unit)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lastPending[e.Unit] = e.Time
	m.restartPending.WithLabelValues(e.Unit).Set(1)
	m.restartDue.WithLabelValues(e.Unit).Set(unixSeconds(e.Due))
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// Package report tells Vault which access key this host's Signal Sciences
// agents run, so that retiring an old key waits for the fleet: for every
// sigsci creds secret <mount>/creds/<role>/sites/<site> that fed a unit's
// files, it writes the access key the unit's running process started on to
// <mount>/fleet/<role>/sites/<site>/hosts/<host>, and again every interval
// as a heartbeat.
//
// It owns that report: the join of what each file's content came from
// (event.Content, the renderer's, from Vault's own answers) with what each
// unit's process runs on (event.Running, when a restart batch ends and
// whenever hostd compares the process with its files), the
// heartbeat, the retries with backoff, and its state in report.json in the
// state directory (digests, site names and access key ids only). A unit
// whose process runs content hostd did not render (a restart owed since
// before hostd started) is not reported until it runs content hostd knows:
// the report waits rather than guesses. A unit that is not running keeps
// the key it last ran. A file without a unit is reported once written.
//
// It never reads a rendered file, never renders, restarts or logs in, and
// never holds a secret key: it consumes events and writes through the
// Writer it is given (vault.go: hostd's own Vault client and token). A
// failed report delays nothing else. It publishes event.Report for each
// attempt and event.AgentKeys for the metrics and `hostd status`.
package report

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/statefile"
)

// DefaultInterval is how often a report is repeated as a heartbeat: well
// inside the plugin's default fleet_stale_after (30m).
const DefaultInterval = 10 * time.Minute

// Bounds of one report and of its retries.
const (
	reportTimeout = 30 * time.Second
	minRetry      = 5 * time.Second
	maxRetry      = 5 * time.Minute
)

// Settings are what the configuration's report block sets; a reload may
// change them.
type Settings struct {
	Enabled  bool
	Host     string        // the host's name in the fleet
	Interval time.Duration // heartbeat; 0 means DefaultInterval
	Version  string        // hostd's version, sent with each report
}

// Options configures a Reporter.
type Options struct {
	Settings
	// StateDir keeps report.json; "" keeps the state in memory only.
	StateDir        string
	stage.Reporting // its Sink receives event.Report and event.AgentKeys
	stage.Clock
}

// Writer writes one report; VaultWriter is the real one.
type Writer interface {
	Write(ctx context.Context, path string, data map[string]any) error
}

// Reporter is an event.Sink that reports to Vault from Run. Safe for
// concurrent use.
type Reporter struct {
	opts  Options
	state *statefile.File
	wake  chan struct{}

	mu       sync.Mutex
	settings Settings
	writer   Writer
	table    *table
	sites    map[Site]*siteReport
	keys     []event.AgentKey
	newKeys  bool // keys changed since they were last published
}

// siteReport is the report of one site.
type siteReport struct {
	want     Want
	sent     *Want // the last report Vault took; nil: none yet
	due      time.Time
	failures int // in a row
}

// New returns a Reporter starting from the state an earlier hostd left in
// opts.StateDir.
func New(opts Options) *Reporter {
	opts.Reporting = opts.Reporting.WithDefaults()
	opts.Clock = opts.Clock.WithDefaults()
	r := &Reporter{opts: opts, wake: make(chan struct{}, 1), sites: map[Site]*siteReport{}}
	r.settings = withDefaults(opts.Settings)
	var path string
	if opts.StateDir != "" {
		path = filepath.Join(opts.StateDir, StateFile)
	}
	r.state = newStateFile(path, opts.Logger)
	r.table = loadTable(r.state)
	r.recompute()
	return r
}

func withDefaults(s Settings) Settings {
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	return s
}

// Configure applies new settings (a reload). A new host name is reported
// at once; a shorter interval takes effect at once.
func (r *Reporter) Configure(s Settings) {
	s = withDefaults(s)
	r.mu.Lock()
	old := r.settings
	r.settings = s
	now := r.opts.Now()
	for _, st := range r.sites {
		switch {
		case s.Host != old.Host:
			st.sent, st.due, st.failures = nil, now, 0
		case st.sent != nil && st.due.After(now.Add(s.Interval)):
			st.due = now.Add(s.Interval)
		}
	}
	r.mu.Unlock()
	r.poke()
}

// UseWriter makes r report through w from now on: the Vault client and
// token of the pipeline that runs now.
func (r *Reporter) UseWriter(w Writer) {
	r.mu.Lock()
	r.writer = w
	r.mu.Unlock()
	r.poke()
}

// Publish implements event.Sink. It never blocks on a report.
func (r *Reporter) Publish(e event.Event) {
	var change func(*table)
	switch e := e.(type) {
	case event.Content:
		change = func(t *table) { t.addContent(e) }
	case event.Running:
		change = func(t *table) { t.addRunning(e) }
	case event.Reload:
		change = func(t *table) { t.keep(e.Templates, e.Units) }
	default:
		return
	}
	r.mu.Lock()
	change(r.table)
	r.recompute()
	saveTable(r.state, r.table)
	r.mu.Unlock()
	r.poke()
}

// recompute turns the table into what each site must report; a site whose
// report changed is due now. The caller holds r.mu.
func (r *Reporter) recompute() {
	keys, wants, waiting := r.table.resolve()
	if !slices.Equal(keys, r.keys) {
		r.keys, r.newKeys = keys, true
	}
	now := r.opts.Now()
	current := map[Site]bool{}
	for _, w := range wants {
		current[w.Site] = true
		st := r.sites[w.Site]
		if st == nil {
			st = &siteReport{}
			r.sites[w.Site] = st
		}
		if !st.want.same(w) {
			st.want, st.due, st.failures = w, now, 0
		}
	}
	for site := range r.sites {
		// A site waiting for its key keeps its last report going.
		if !current[site] && !waiting[site] {
			delete(r.sites, site)
		}
	}
}

func (w Want) same(o Want) bool {
	return w.Site == o.Site && w.AccessKey == o.AccessKey && w.Unit == o.Unit && w.AgentStarted.Equal(o.AgentStarted)
}

func (r *Reporter) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run sends the reports that are due, until ctx ends; it returns nil then.
func (r *Reporter) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		r.publishKeys()
		j, due := r.next()
		if j != nil {
			r.send(ctx, *j)
			continue
		}
		var timer <-chan time.Time
		if !due.IsZero() {
			timer = r.opts.Until(due)
		}
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-timer:
		}
	}
	return nil
}

// job is one report to send.
type job struct {
	want      Want
	heartbeat bool
	path      string
	data      map[string]any
	writer    Writer
}

// next returns the report due first if it is due now, else when one is
// due (zero: none is scheduled, or there is no writer yet, or reports are
// off).
func (r *Reporter) next() (*job, time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.settings.Enabled || r.writer == nil || len(r.sites) == 0 {
		return nil, time.Time{}
	}
	var first *siteReport
	for _, site := range sortedSites(r.sites) {
		if st := r.sites[site]; first == nil || st.due.Before(first.due) {
			first = st
		}
	}
	if first.due.After(r.opts.Now()) {
		return nil, first.due
	}
	w := first.want
	return &job{
		want:      w,
		heartbeat: first.sent != nil && first.sent.same(w),
		path:      reportPath(w.Site, r.settings.Host),
		data:      reportData(w, r.settings.Version),
		writer:    r.writer,
	}, time.Time{}
}

// send writes j and schedules the site's next report: the heartbeat after
// a success, a retry with backoff after a failure.
func (r *Reporter) send(ctx context.Context, j job) {
	wctx, cancel := context.WithTimeout(ctx, reportTimeout)
	err := j.writer.Write(wctx, j.path, j.data)
	cancel()
	if ctx.Err() != nil {
		return // stopping: the next start reports again
	}
	now := r.opts.Now()
	e := event.Report{Time: now, Mount: j.want.Site.Mount, Role: j.want.Site.Role, Site: j.want.Site.Site,
		AccessKey: j.want.AccessKey, Unit: j.want.Unit, Heartbeat: j.heartbeat, OK: err == nil}
	r.mu.Lock()
	e.Host = r.settings.Host
	var retry time.Duration
	failures := 0
	if st := r.sites[j.want.Site]; st != nil {
		retry = r.schedule(st, j, err, now)
		failures = st.failures
	}
	r.mu.Unlock()
	if err != nil {
		e.Err = err.Error()
	}
	r.log(j, err, failures, retry)
	r.opts.Sink.Publish(e)
}

// schedule records the outcome of j for st and returns the retry delay
// after a failure. The caller holds r.mu.
func (r *Reporter) schedule(st *siteReport, j job, err error, now time.Time) time.Duration {
	w := j.want
	if !st.want.same(w) || j.path != reportPath(w.Site, r.settings.Host) {
		st.due = now // a newer report, or a new host name, came meanwhile
		return 0
	}
	if err == nil {
		sent := w
		st.sent, st.failures = &sent, 0
		st.due = now.Add(jittered(r.settings.Interval, r.opts.Rand()))
		return 0
	}
	st.failures++
	ceiling := min(maxRetry, r.settings.Interval)
	retry := backoff.Delay(st.failures, min(minRetry, ceiling), ceiling, r.opts.Rand)
	st.due = now.Add(retry)
	return retry
}

func (r *Reporter) log(j job, err error, failures int, retry time.Duration) {
	attrs := []any{"path", j.path, "access_key", j.want.AccessKey, "unit", j.want.Unit}
	switch {
	case err != nil:
		r.opts.Logger.Warn("cannot report to Vault which access key the agent runs; retrying",
			append(attrs, "err", err.Error(), "failures", failures, "retry_in", retry.Round(time.Second))...)
	case j.heartbeat:
		r.opts.Logger.Debug("reported the access key the agent runs again (heartbeat)", attrs...)
	default:
		r.opts.Logger.Info("reported to Vault the access key the agent runs", attrs...)
	}
}

// publishKeys publishes the access keys the units run, when they changed.
func (r *Reporter) publishKeys() {
	r.mu.Lock()
	if !r.newKeys {
		r.mu.Unlock()
		return
	}
	keys := slices.Clone(r.keys)
	r.newKeys = false
	r.mu.Unlock()
	r.opts.Sink.Publish(event.AgentKeys{Time: r.opts.Now(), Keys: keys})
}

// reportPath is where host reports for site.
func reportPath(s Site, host string) string {
	return fmt.Sprintf("%s/fleet/%s/sites/%s/hosts/%s", s.Mount, s.Role, s.Site, host)
}

// reportData is the report's body. Every field is sent: a report replaces
// the previous one.
func reportData(w Want, version string) map[string]any {
	started := ""
	if !w.AgentStarted.IsZero() {
		started = w.AgentStarted.UTC().Format(time.RFC3339)
	}
	return map[string]any{"access_key": w.AccessKey, "unit": w.Unit, "agent_started": started, "version": version}
}

// jittered is d ±10 %, so a fleet's heartbeats do not fall in step.
func jittered(d time.Duration, random float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*random))
}

func sortedSites(m map[Site]*siteReport) []Site {
	sites := make([]Site, 0, len(m))
	for s := range m {
		sites = append(sites, s)
	}
	slices.SortFunc(sites, Site.compare)
	return sites
}

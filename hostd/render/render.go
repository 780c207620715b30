// Package render owns hostd's use of consul-template: it builds the runner's
// configuration explicitly (nothing from the environment, no token, Vault
// reached only through hostd/vaultproxy), supervises the runner and restarts
// it with capped, jittered backoff, writes every rendered file through
// hostd/write, publishes an event.Render per attempt and an event.Content
// saying which sigsci creds secrets and access keys a file's content came
// from (sources.go), and reports the files that changed, per systemd unit,
// once every template of that unit has rendered. Once renders every
// template a single time (`hostd render`).
//
// It does not log in to Vault, restart units or decide when a restart runs:
// auth, restart and rollout do. A template that cannot render leaves its
// destination as it was.
package render

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	ctconfig "github.com/hashicorp/consul-template/config"
	"github.com/hashicorp/consul-template/manager"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
)

// Defaults used when the matching Options field is zero.
const (
	DefaultRefreshInterval = 30 * time.Second
)

// healthyRun: a runner that ran this long before failing starts the backoff
// over.
const healthyRun = time.Minute

// Template is one file to render.
type Template struct {
	Contents    string // the template text (config reads the source file)
	Destination string
	Perms       os.FileMode // 0 means write.DefaultPerms
	User, Group string
	// ErrorOnMissingKey makes a reference to a missing key an error (the
	// old file stays) instead of rendering "<no value>".
	ErrorOnMissingKey bool
	Backup            bool   // keep the previous content as Destination.bak
	Unit              string // systemd unit fed by this file; "" for none
}

// Dialer connects consul-template to Vault; *vaultproxy.Proxy is one.
type Dialer interface {
	Dial(network, address string) (net.Conn, error)
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// Options configures a Renderer.
type Options struct {
	Templates []Template
	Dialer    Dialer
	// RefreshInterval is consul-template's default lease duration. It keeps
	// the first value it is given for the whole process (a package variable
	// set once), so hostd's proxy (hostd/vaultproxy) puts the current
	// interval into every secret without a lease instead; this value only
	// matters for listings.
	RefreshInterval        time.Duration
	MinBackoff, MaxBackoff time.Duration // defaults backoff.DefaultBase, backoff.DefaultCeiling
	// OnChange receives the changed files of units whose every template has
	// rendered, one batch per render pass. It must not block.
	OnChange func([]Change)
	// Keys, when set, is what the proxy saw of Vault's answers for sigsci
	// creds secrets; with it every render pass publishes an event.Content
	// per destination whose sources changed (sources.go).
	Keys KeyLog
	// Refuse, when set, is asked before each write; an error keeps the old
	// file and is reported as the template's error. hostd's rollout refuses
	// content a unit did not survive, so a rolled-back file is not written
	// again on every refresh.
	Refuse func(destination string, content []byte) error
	stage.Reporting
	stage.Clock
	// Heartbeat, when set, is called by Run's loop at least every
	// HeartbeatInterval while the loop is alive (heartbeat.go).
	Heartbeat         func()
	HeartbeatInterval time.Duration
}

// Renderer runs consul-template for a fixed set of templates.
type Renderer struct {
	opts      Options
	templates []Template // sources already read into Contents; only valid ones
	invalid   []templateError
	byDest    map[string]Template
	unitDests map[string][]string

	starts  atomic.Int64
	refresh chan struct{} // Refresh asks the running runner to start over
	sources sources       // what the current runner's content came from

	mu       sync.Mutex
	rendered map[string]bool   // destinations written successfully at least once
	pending  map[string]Change // changed destinations not yet reported
	lastErr  map[string]*manager.RenderEvent
}

// templateError is a template left out of the runner: it fails before any
// data is available, so it could never render.
type templateError struct {
	t   Template
	err error
}

// New checks the templates, reads template sources, and returns a Renderer
// that has not started. A template that fails before any data is available
// (a syntax error, a denied function) does not stop the others: it is left
// out, its destination is not touched, its unit is never reported as changed,
// and every runner start publishes its error. Validate reports the same
// problems up front.
func New(opts Options) (*Renderer, error) {
	if opts.Dialer == nil {
		return nil, errors.New("render: a dialer to Vault (the vault proxy) is required")
	}
	if os.Getenv("VAULT_AGENT_ADDR") != "" {
		return nil, errors.New("render: VAULT_AGENT_ADDR is set in hostd's environment; consul-template would send requests there instead of through hostd: unset it")
	}
	opts = withDefaults(opts)
	r := &Renderer{
		opts:      opts,
		byDest:    map[string]Template{},
		unitDests: map[string][]string{},
		rendered:  map[string]bool{},
		pending:   map[string]Change{},
		lastErr:   map[string]*manager.RenderEvent{},
		refresh:   make(chan struct{}, 1),
	}
	if len(opts.Templates) == 0 {
		return nil, errors.New("render: no templates")
	}
	for i, t := range opts.Templates {
		t, err := loadTemplate(t)
		if err != nil {
			return nil, fmt.Errorf("render: template %d: %w", i+1, err)
		}
		if _, dup := r.byDest[t.Destination]; dup {
			return nil, fmt.Errorf("render: two templates write %s", t.Destination)
		}
		r.byDest[t.Destination] = t
		if t.Unit != "" {
			r.unitDests[t.Unit] = append(r.unitDests[t.Unit], t.Destination)
		}
		if err := checkTemplate(t); err != nil {
			r.invalid = append(r.invalid, templateError{t, err})
			continue
		}
		r.templates = append(r.templates, t)
	}
	return r, nil
}

func withDefaults(o Options) Options {
	o.RefreshInterval = stage.OrDefault(o.RefreshInterval, DefaultRefreshInterval)
	o.MinBackoff, o.MaxBackoff = backoff.Bounds(o.MinBackoff, o.MaxBackoff)
	o.Reporting = o.Reporting.WithDefaults()
	o.Clock = o.Clock.WithDefaults()
	return o
}

// Run renders until ctx is done, restarting the runner with backoff when it
// fails. It returns ctx's error.
func (r *Renderer) Run(ctx context.Context) error {
	if len(r.templates) == 0 {
		r.publishInvalidTemplates()
		<-ctx.Done()
		return ctx.Err()
	}
	beats, stop := r.heartbeat()
	defer stop()
	failures := 0
	for {
		r.beat()
		if failures > 0 {
			d := backoff.Delay(failures, r.opts.MinBackoff, r.opts.MaxBackoff, r.opts.Rand)
			r.opts.Logger.Info("restarting consul-template runner after backoff", "wait", d, "consecutive_failures", failures)
			if err := r.sleep(ctx, d, beats); err != nil {
				return err
			}
		}
		started := r.opts.Now()
		err := r.runOnce(ctx, beats)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, errRefresh) {
			r.opts.Logger.Info("reading every secret again now, as asked")
			continue
		}
		if r.opts.Now().Sub(started) >= healthyRun {
			failures = 0
		}
		failures++
		r.runnerFailed(err)
	}
}

// runOnce creates and runs one runner until it fails or ctx is done, and
// always stops it before returning.
func (r *Renderer) runOnce(ctx context.Context, beats <-chan time.Time) error {
	runner, err := manager.NewRunner(r.consulTemplateConfig(), false)
	if err != nil {
		return fmt.Errorf("create consul-template runner: %w", err)
	}
	r.starts.Add(1)
	if r.opts.Keys != nil {
		r.sources.begin(r.opts.Keys)
	}
	r.publishInvalidTemplates()
	finished, panicked := startRunner(runner)
	defer stopRunner(runner, finished)

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-panicked:
			return err
		case err := <-runner.ErrCh:
			return fmt.Errorf("consul-template runner: %w", err)
		case <-runner.ServerErrCh:
			// Vault errors: the proxy has published them; the runner retries.
		case <-runner.TemplateRenderedCh():
			r.reportCompleteUnits()
		case <-runner.RenderEventCh():
			events := runner.RenderEvents()
			r.publishTemplateErrors(events)
			r.publishContents(events)
		case <-r.refresh:
			return errRefresh
		case <-beats:
			r.beat()
		}
	}
}

// errRefresh ends a runner that Refresh asked to start over.
var errRefresh = errors.New("refresh asked")

// Refresh makes Run start a new consul-template runner at once, which reads
// every secret again and renders every template, instead of waiting for the
// refresh interval: `hostd refresh` after a rotation. Files are written and
// units restarted only where the content changed, as always. It never
// blocks; asks made while one is pending count once.
func (r *Renderer) Refresh() {
	select {
	case r.refresh <- struct{}{}:
	default:
	}
}

// runnerFailed reports a runner failure against every template: none of them
// renders until the next runner starts.
func (r *Renderer) runnerFailed(err error) {
	msg := err.Error()
	r.opts.Logger.Warn("consul-template runner failed", "err", msg)
	now := r.opts.Now()
	for _, t := range r.templates {
		r.opts.Sink.Publish(event.Render{Time: now, Template: t.Destination, Unit: t.Unit, Err: msg})
	}
}

// publishInvalidTemplates reports the templates left out of the runner.
func (r *Renderer) publishInvalidTemplates() {
	now := r.opts.Now()
	for _, inv := range r.invalid {
		msg := inv.err.Error()
		r.opts.Logger.Error("template left out: it cannot render; its file stays as it is", "destination", inv.t.Destination, "err", msg)
		r.opts.Sink.Publish(event.Render{Time: now, Template: inv.t.Destination, Unit: inv.t.Unit, Err: msg})
	}
}

// publishTemplateErrors publishes each new template error (execution or
// write) once per render pass.
func (r *Renderer) publishTemplateErrors(events map[string]*manager.RenderEvent) {
	now := r.opts.Now()
	for id, ev := range events {
		if ev == nil || ev.Error == nil || len(ev.TemplateConfigs) == 0 {
			continue
		}
		r.mu.Lock()
		seen := r.lastErr[id] == ev
		r.lastErr[id] = ev
		r.mu.Unlock()
		if seen {
			continue
		}
		dest := ctconfig.StringVal(ev.TemplateConfigs[0].Destination)
		t := r.byDest[dest]
		msg := redact(ev.Error.Error(), t.Contents)
		r.opts.Logger.Warn("template did not render; the old file stays", "destination", dest, "err", msg)
		r.opts.Sink.Publish(event.Render{Time: now, Template: dest, Unit: t.Unit, Err: msg})
	}
}

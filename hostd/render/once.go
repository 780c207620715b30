package render

import (
	"context"
	"errors"
	"fmt"
	"strings"

	ctconfig "github.com/hashicorp/consul-template/config"
	"github.com/hashicorp/consul-template/manager"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/vaulterr"
)

// Outcome is what Once did with one template.
type Outcome struct {
	Destination string
	// Written is true when the destination holds the rendered content:
	// written now (Changed) or already up to date.
	Written bool
	Changed bool
	// Err says why the destination was not written (it is as it was); the
	// text is scrubbed like the daemon's template errors.
	Err string
}

// Once renders every template a single time and writes it exactly as Run
// does (hostd/write: validated, atomic, with the template's mode and
// owner), then returns: the one-shot behind `hostd render`. It restarts
// nothing and never calls OnChange.
//
// A secret that cannot be read yet is retried with consul-template's
// backoff until ctx is done; a template error (a missing key, a refused or
// failed write) is final. Templates are independent, as in Run: each one
// that renders is written, one that fails leaves its destination as it was
// (never a partial file). The outcomes come in the order of
// Options.Templates; the error names every template not written.
func (r *Renderer) Once(ctx context.Context) ([]Outcome, error) {
	r.publishInvalidTemplates()
	if len(r.templates) == 0 {
		return r.outcomes(nil, nil, nil)
	}
	cfg := r.consulTemplateConfig()
	cfg.Once = true
	runner, err := manager.NewRunner(cfg, false)
	if err != nil {
		return nil, fmt.Errorf("create consul-template runner: %w", err)
	}
	r.starts.Add(1)
	finished, panicked := startRunner(runner)
	defer stopRunner(runner, finished)

	vaultErrs := map[string]string{} // dependency → its last error
	for {
		select {
		case <-ctx.Done():
			return r.outcomes(runner.RenderEvents(), vaultErrs, fmt.Errorf("gave up waiting: %w", context.Cause(ctx)))
		case err := <-panicked:
			return r.outcomes(runner.RenderEvents(), vaultErrs, err)
		case err := <-runner.ErrCh:
			return r.outcomes(runner.RenderEvents(), vaultErrs, fmt.Errorf("consul-template runner: %w", err))
		case err := <-runner.ServerErrCh:
			r.recordVaultError(vaultErrs, err)
		case <-runner.TemplateRenderedCh():
		case <-runner.RenderEventCh():
			events := runner.RenderEvents()
			r.publishTemplateErrors(events)
			if r.settled(events) {
				return r.outcomes(events, vaultErrs, nil)
			}
		case <-runner.DoneCh: // once mode: every template rendered
			return r.outcomes(runner.RenderEvents(), vaultErrs, nil)
		}
	}
}

// recordVaultError keeps the last error of each dependency (consul-template
// prefixes it with the dependency, "vault.read(kv/agent): ...") and logs a
// new one: until ctx ends, it is only retried.
func (r *Renderer) recordVaultError(errs map[string]string, err error) {
	msg := vaulterr.Describe(err)
	dependency, _, _ := strings.Cut(msg, ": ")
	if errs[dependency] != msg {
		r.opts.Logger.Warn("reading from Vault failed; retrying", "err", redact(msg, ""))
	}
	errs[dependency] = msg
}

// settled reports whether every template has rendered or failed.
func (r *Renderer) settled(events map[string]*manager.RenderEvent) bool {
	done := 0
	for _, ev := range byDestination(events) {
		if ev.Error != nil || ev.WouldRender || ev.DidRender {
			done++
		}
	}
	return done >= len(r.templates)
}

// outcomes turns the runner's last render events into one Outcome per
// configured template. stopped, when set, is why the templates still
// waiting for data were given up on.
func (r *Renderer) outcomes(events map[string]*manager.RenderEvent, vaultErrs map[string]string, stopped error) ([]Outcome, error) {
	evs := byDestination(events)
	invalid := map[string]error{}
	for _, inv := range r.invalid {
		invalid[inv.t.Destination] = inv.err
	}
	var out []Outcome
	var errs []error
	for _, tpl := range r.opts.Templates {
		t := r.byDest[tpl.Destination]
		o := Outcome{Destination: t.Destination}
		ev := evs[t.Destination]
		switch {
		case invalid[t.Destination] != nil:
			o.Err = invalid[t.Destination].Error()
		case ev != nil && ev.Error != nil:
			o.Err = redact(ev.Error.Error(), t.Contents)
		case ev != nil && (ev.WouldRender || ev.DidRender):
			o.Written, o.Changed = true, ev.DidRender
		default:
			o.Err = redact(notRendered(ev, vaultErrs, stopped), t.Contents)
		}
		if o.Err != "" {
			errs = append(errs, fmt.Errorf("template %s: %s", o.Destination, o.Err))
		}
		out = append(out, o)
	}
	return out, errors.Join(errs...)
}

// notRendered says why a template with no result has none: the Vault
// errors of the data it still waits for, and why the wait ended.
func notRendered(ev *manager.RenderEvent, vaultErrs map[string]string, stopped error) string {
	var why []string
	if ev != nil && ev.MissingDeps != nil {
		for _, d := range ev.MissingDeps.List() {
			if msg, ok := vaultErrs[d.String()]; ok {
				why = append(why, msg)
			} else {
				why = append(why, "no answer yet for "+d.String())
			}
		}
	}
	if stopped == nil {
		stopped = errors.New("the runner stopped")
	}
	if len(why) == 0 {
		return fmt.Sprintf("not rendered: %v", stopped)
	}
	return fmt.Sprintf("not rendered: %s (%v)", strings.Join(why, "; "), stopped)
}

// byDestination keys the runner's render events by destination.
func byDestination(events map[string]*manager.RenderEvent) map[string]*manager.RenderEvent {
	out := make(map[string]*manager.RenderEvent, len(events))
	for _, ev := range events {
		if ev == nil || len(ev.TemplateConfigs) == 0 {
			continue
		}
		out[ctconfig.StringVal(ev.TemplateConfigs[0].Destination)] = ev
	}
	return out
}

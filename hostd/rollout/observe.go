package rollout

import (
	"context"
	"maps"
	"slices"
)

// Observe compares each unit's running process with its files once more,
// as Reconcile did, and publishes what it runs on (an event.Running). It
// restarts nothing and schedules nothing, and it leaves alone a unit being
// restarted now (its batch reports once the health check is done). It sees
// what happens to a unit without hostd: an agent that was stopped when its
// files changed and was started by hand since (it runs the new files), an
// agent restarted by hand while its restart waits for a window, a crash
// systemd restarted. A unit systemd does not answer for is skipped until
// the next call. Call it after Reconcile.
func (r *Rollout) Observe(ctx context.Context) {
	reader, ok := r.opts.Restarter.(ProcessReader)
	if !ok || r.opts.Running == nil {
		return
	}
	r.mu.Lock()
	files := make(map[string][]string, len(r.files))
	for unit, dests := range r.files {
		files[unit] = slices.Clone(dests)
	}
	r.mu.Unlock()
	for _, unit := range slices.Sorted(maps.Keys(files)) {
		if r.busyNow(unit) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, processTimeout)
		p, err := reader.MainProcess(pctx, unit)
		cancel()
		if err != nil || r.busyNow(unit) {
			continue // no answer, or a restart began meanwhile: it reports itself
		}
		a := r.opts.Running.Assess(unit, p, files[unit])
		r.opts.Sink.Publish(a.Event(r.opts.Now()))
	}
}

// busyNow reports whether unit is being restarted now.
func (r *Rollout) busyNow(unit string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.busy[unit]
}

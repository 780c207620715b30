package rollout

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// Watched is a file a unit reads, as the configuration names it.
type Watched struct {
	Unit, Destination string
	// Backup: the file's previous content is kept at
	// write.BackupPath(Destination).
	Backup bool
}

// ProcessReader reads when a unit's current run started; *restart.Conn is
// one. A Restarter that is one lets the Rollout record what units run on.
type ProcessReader interface {
	MainProcess(ctx context.Context, unit string) (restart.Process, error)
}

// processTimeout bounds reading a unit's process after a restart.
const processTimeout = 10 * time.Second

// Reconcile compares each unit's running process with the files it reads,
// as an earlier hostd (or the pipeline before a reload) left them:
//
//   - a restart that was begun and not finished is taken up at once
//     (resume): the unit is checked, and rolled back if it does not survive;
//   - a unit whose process started before a file's current content is owed
//     a restart, submitted like any change (debounce, splay, window), with
//     the file's backup as the content to roll back to;
//   - what each unit runs on is published as an event.Running.
//
// Units with a batch pending or under way are left to that batch. Reading a
// unit's process is retried with backoff while systemd does not answer,
// until ctx ends. Without a Tracker, or with a Restarter that cannot read
// processes, Reconcile only notes which files each unit reads.
func (r *Rollout) Reconcile(ctx context.Context, files []Watched) {
	byUnit := r.watch(files)
	reader, ok := r.opts.Restarter.(ProcessReader)
	if !ok || r.opts.Running == nil {
		return
	}
	for _, unit := range slices.Sorted(maps.Keys(byUnit)) {
		p, err := r.readProcess(ctx, reader, unit)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			r.reconcile(unit, p, byUnit[unit])
		}
	}
}

// watch notes which files each unit reads, for later assessments.
func (r *Rollout) watch(files []Watched) map[string][]Watched {
	byUnit := map[string][]Watched{}
	for _, w := range files {
		if w.Unit != "" {
			byUnit[w.Unit] = append(byUnit[w.Unit], w)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for unit, ws := range byUnit {
		r.files[unit] = destinations(ws)
	}
	return byUnit
}

// readProcess asks systemd for unit's process until it answers, with the
// restart retries' backoff; a unit systemd does not know is not asked again.
func (r *Rollout) readProcess(ctx context.Context, reader ProcessReader, unit string) (restart.Process, error) {
	for failures := 1; ; failures++ {
		p, err := reader.MainProcess(ctx, unit)
		if err == nil || errors.Is(err, restart.ErrNoSuchUnit) {
			return p, err
		}
		delay := backoff.Doubled(failures, r.opts.RetryInterval, r.opts.MaxRetry)
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-r.opts.Until(r.opts.Now().Add(delay)):
		}
	}
}

func (r *Rollout) reconcile(unit string, p restart.Process, watched []Watched) {
	if r.scheduled(unit) {
		return
	}
	tracker := r.opts.Running
	if b, ok := tracker.Unfinished(unit); ok && r.resume(unit, p, b, watched) {
		return
	}
	a := tracker.Assess(unit, p, destinations(watched))
	r.opts.Sink.Publish(a.Event(r.opts.Now()))
	var owed []Change
	for _, w := range watched {
		if slices.Contains(a.Owed(), w.Destination) {
			owed = append(owed, Change{Unit: unit, Destination: w.Destination, Previous: backup(w, "")})
		}
	}
	// Checked again: a render may have scheduled (or begun) the unit's
	// restart onto its current files while the process was assessed, and a
	// second batch would restart it once more for nothing.
	if len(owed) > 0 && !r.scheduled(unit) {
		r.Submit(owed...)
	}
}

// resume takes up restart b that an earlier hostd began and did not finish,
// and reports whether it did. While the files still hold what the unit was
// restarted with, the batch runs again at once and is checked rather than
// restarted when the restart had been issued. When they hold the content
// before it, the rollback had put it back: the unit is restarted onto it at
// once if its process is older. Any other content is new since, and a unit
// stopped since was stopped on purpose: b is dropped and the files are
// compared as usual.
func (r *Rollout) resume(unit string, p restart.Process, b running.Batch, watched []Watched) bool {
	tracker := r.opts.Running
	if p.Inactive() {
		tracker.Settle(unit)
		return false
	}
	now := map[string]string{}
	for _, f := range b.Files {
		now[f.Destination], _, _ = running.ReadDigest(f.Destination)
	}
	switch {
	case every(b.Files, func(f running.BatchFile) bool { return f.Digest != "" && now[f.Destination] == f.Digest }):
		resumed := &batch{unit: unit, resumed: true, begun: b.Begun}
		for _, f := range b.Files {
			c := Change{Unit: unit, Destination: f.Destination}
			if f.Previous != "" {
				c.Previous = backup(watchedFile(watched, f.Destination), f.Previous)
			}
			resumed.add(c)
		}
		r.schedule(resumed)
		return true
	case every(b.Files, func(f running.BatchFile) bool { return f.Previous != "" && now[f.Destination] == f.Previous }):
		tracker.Settle(unit)
		a := tracker.Assess(unit, p, destinations(watched))
		r.opts.Sink.Publish(a.Event(r.opts.Now()))
		if owed := a.Owed(); len(owed) > 0 {
			rollback := &batch{unit: unit}
			for _, dest := range owed {
				rollback.add(Change{Unit: unit, Destination: dest})
			}
			r.schedule(rollback)
		}
		return true
	}
	tracker.Settle(unit)
	return false
}

// schedule makes b due now, outside debounce, splay and window: it
// continues a restart that was due already.
func (r *Rollout) schedule(b *batch) {
	now := r.opts.Now()
	b.changed, b.due = now, now
	cause := b.destinations() // before Submit can add to it
	r.mu.Lock()
	r.pending[b.unit] = b
	r.mu.Unlock()
	r.opts.Sink.Publish(event.Pending{Time: now, Unit: b.unit, Due: now, Cause: cause})
	r.poke()
}

func (r *Rollout) scheduled(unit string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending[unit] != nil || r.busy[unit]
}

// firstAttempt is the batch's restart and health check; a resumed batch
// whose restart was issued already is only checked.
func (r *Rollout) firstAttempt(ctx context.Context, b *batch) attempt {
	if reader, ok := r.opts.Restarter.(ProcessReader); ok && b.resumed {
		if p, err := reader.MainProcess(ctx, b.unit); err == nil && p.Started.After(b.begun) {
			return r.judge(ctx, b.unit, time.Now())
		}
	}
	return r.restartAndCheck(ctx, b.unit, leaveFailed)
}

// begin records, before the restart is issued, what the batch restarts its
// unit with and what a rollback would put back.
func (r *Rollout) begin(b *batch) {
	tracker := r.opts.Running
	if tracker == nil {
		return
	}
	// Wall-clock time: it is compared with systemd's start times.
	rec := running.Batch{Begun: time.Now()}
	if b.resumed {
		rec.Begun = b.begun
	}
	for _, c := range b.changes {
		f := running.BatchFile{Destination: c.Destination}
		f.Digest, _, _ = running.ReadDigest(c.Destination)
		if c.Previous != nil {
			f.Previous = running.Digest(c.Previous.Content())
		}
		rec.Files = append(rec.Files, f)
	}
	tracker.Begin(b.unit, rec)
}

// settle publishes what the batch's unit runs on now, over the unit's files
// and dests (the batch's own, read when it started: a batch requeued for a
// retry takes new changes meanwhile), and records that the batch has ended.
// The assessment comes first: while the batch is recorded, a process it
// started is known to run on the content it restarted with.
func (r *Rollout) settle(ctx context.Context, b *batch, dests []string) {
	tracker := r.opts.Running
	reader, ok := r.opts.Restarter.(ProcessReader)
	if tracker == nil {
		return
	}
	defer tracker.Settle(b.unit)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, processTimeout)
	defer cancel()
	p, err := reader.MainProcess(ctx, b.unit)
	if err != nil {
		return
	}
	r.mu.Lock()
	files := slices.Clone(r.files[b.unit])
	r.mu.Unlock()
	for _, d := range dests {
		if !slices.Contains(files, d) {
			files = append(files, d)
		}
	}
	a := tracker.Assess(b.unit, p, files)
	r.opts.Sink.Publish(a.Event(r.opts.Now()))
}

// backup returns w's backup as the content to roll back to, when w keeps
// one and, if digest is given, it holds that content.
func backup(w Watched, digest string) *write.Snapshot {
	if !w.Backup {
		return nil
	}
	snap, err := write.ReadSnapshot(write.BackupPath(w.Destination))
	if err != nil || (digest != "" && running.Digest(snap.Content()) != digest) {
		return nil
	}
	return snap
}

// every reports whether files is not empty and ok holds for each.
func every(files []running.BatchFile, ok func(running.BatchFile) bool) bool {
	return len(files) > 0 && !slices.ContainsFunc(files, func(f running.BatchFile) bool { return !ok(f) })
}

func watchedFile(watched []Watched, dest string) Watched {
	for _, w := range watched {
		if w.Destination == dest {
			return w
		}
	}
	return Watched{Destination: dest}
}

func destinations(ws []Watched) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.Destination
	}
	return out
}

// Package rollout decides when a unit is restarted after its files changed,
// and takes back a change the unit does not survive.
//
// It owns the restart policy: per-unit debounce, a random splay, the
// maintenance window, one restart per unit at a time, the health check after
// a restart (health.go, check.go), what counts as a failure of the new
// content (apply.go), and the rollback (restore the batch's backups, restart
// again). A unit that is not running (stopped or failed) is not started by a
// change: it reads its new files when it is started.
// It restarts through a Restarter (hostd/restart) and puts files back through
// the function it is given (hostd/write's Put); it never renders or writes a
// file itself, and it reports only through an event.Sink.
//
// A restart owed survives hostd itself (startup.go): with a
// running.Tracker, every restart is recorded before it is issued and when it
// ends, and Reconcile, at start-up and after a reload, compares each unit's
// running process with its files. A unit whose process started before its
// current file is owed a restart and gets one through the normal schedule; a
// restart an earlier hostd left unfinished (killed mid-batch, or stopped
// while waiting for the health check) is checked at once and rolled back if
// the unit does not survive it.
//
// Nothing here makes hostd wait for a batch: a reload hands the pending
// batches and the restarts under way to the next Rollout (HandOver), and a
// stop gives the restarts under way StopGrace to end, then leaves them to the
// next start.
package rollout

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/running"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// Change says that Destination, a file Unit reads, got new content; Previous
// is what it held before (nil when the file is new).
type Change struct {
	Unit, Destination string
	Previous          *write.Snapshot
}

// Restarter restarts units and reads their state; *restart.Conn is one.
// TryRestart restarts a unit only if it is running; Restart starts it too,
// and is used only by a rollback, for a unit that failed on the new content.
type Restarter interface {
	TryRestart(ctx context.Context, unit string) (restart.Result, error)
	Restart(ctx context.Context, unit string) (restart.Result, error)
	UnitState(ctx context.Context, unit string) (restart.State, error)
}

// RestoreFunc puts previous back at destination; write.Put is one.
type RestoreFunc func(destination string, previous *write.Snapshot) error

// Defaults for zero Options fields.
const (
	DefaultActiveTimeout      = 30 * time.Second
	DefaultStableFor          = 5 * time.Second
	DefaultWatchInterval      = time.Second
	DefaultRetryInterval      = 30 * time.Second
	DefaultMaxRetry           = backoff.DefaultCeiling
	DefaultRetryRejectedAfter = time.Hour
	DefaultCheckTimeout       = 10 * time.Second
	DefaultStopGrace          = 20 * time.Second
)

// Options is the restart policy. Zero durations take the defaults above,
// except Debounce and Splay, where zero means none.
type Options struct {
	// Restarter restarts the units and reads their state: systemd, through
	// a *restart.LazyConn. Required.
	Restarter Restarter
	// Restore puts a file's previous content back when its unit did not
	// survive the new content; write.Put is one. Required unless no change
	// carries previous content.
	Restore RestoreFunc
	// Sink receives event.Pending, event.Restart and event.AgentKeys;
	// default event.Discard. Submit publishes while it holds the Rollout's
	// lock (so a batch is announced before Run can start it): the Sink must
	// not call back into the Rollout.
	Sink event.Sink

	// Debounce: a unit is restarted once no change arrived for this long.
	Debounce time.Duration
	// Splay: a random delay in [0, Splay) added once per batch, so a fleet
	// does not restart at the same moment. It counts from the moment the
	// restart may run; within a maintenance window it is shortened to the
	// time left in the window (schedule.go).
	Splay time.Duration
	// ActiveTimeout bounds the wait for the unit to be up (active and, for
	// a service, running) after a restart.
	ActiveTimeout time.Duration
	// StableFor is how long the unit must then stay up as the same
	// instance (invocation, main PID, no automatic restart).
	StableFor time.Duration
	// Check, when set, runs once the unit has stayed up for StableFor; a
	// non-zero exit or a timeout is a failure of the new content.
	Check *Check
	// WatchInterval spaces the state reads of the health check.
	WatchInterval time.Duration
	// RetryInterval is the first delay before retrying a restart that
	// said nothing about the new content (systemd refused it, its job was
	// canceled or timed out, the unit's state could not be read); it
	// doubles up to MaxRetry.
	RetryInterval, MaxRetry time.Duration
	// RetryRejectedAfter is how long content a unit did not survive is
	// refused before it is tried again (rejected.go).
	RetryRejectedAfter time.Duration
	// Window, when set, holds restarts until the maintenance window opens.
	Window *Window
	// Units, when set, are the units this configuration restarts: a batch
	// of any other unit (handed over at a reload that removed its template,
	// or a retry of it) is dropped, not kept owed.
	Units []string
	// StopGrace is how long Run, once its context ends, waits for the
	// restarts under way to finish; then it stops waiting for them, and a
	// Tracker keeps them for the next start to finish.
	StopGrace time.Duration

	// Running, when set, records every restart and what each unit runs on
	// (the state that lets a restart owed survive hostd). Reconcile needs it.
	Running *running.Tracker
	// Heartbeat, when set, is called by Run's loop at least every
	// HeartbeatInterval, as long as the loop is alive.
	Heartbeat         func()
	HeartbeatInterval time.Duration

	stage.Clock
}

func (o Options) withDefaults() Options {
	o.ActiveTimeout = stage.OrDefault(o.ActiveTimeout, DefaultActiveTimeout)
	o.StableFor = stage.OrDefault(o.StableFor, DefaultStableFor)
	o.WatchInterval = stage.OrDefault(o.WatchInterval, DefaultWatchInterval)
	o.RetryRejectedAfter = stage.OrDefault(o.RetryRejectedAfter, DefaultRetryRejectedAfter)
	if o.Check != nil && o.Check.Timeout <= 0 {
		c := *o.Check
		c.Timeout = DefaultCheckTimeout
		o.Check = &c
	}
	o.RetryInterval = stage.OrDefault(o.RetryInterval, DefaultRetryInterval)
	o.MaxRetry = stage.OrDefault(o.MaxRetry, DefaultMaxRetry)
	o.StopGrace = stage.OrDefault(o.StopGrace, DefaultStopGrace)
	o.Clock = o.Clock.WithDefaults()
	if o.Sink == nil {
		o.Sink = event.Discard
	}
	return o
}

// Rollout schedules and runs restarts. Submit may be called from any
// goroutine, before or while Run runs.
type Rollout struct {
	opts Options // with defaults: Restarter, Restore and Sink are its fields

	wake chan struct{}
	// crew is shared with the rollouts that take over at a reload.
	crew *crew
	// stopping is crew.stopping: closed when hostd stops; a health check
	// under way then gives up as soon as systemd cannot be asked.
	stopping <-chan struct{}
	// applies counts the restarts this Rollout started (Wait).
	applies sync.WaitGroup

	mu      sync.Mutex
	pending map[string]*batch // unit → changes waiting for their restart
	// busy: units being restarted now, by this Rollout or, after a
	// HandOver, by the one before it.
	busy    map[string]bool
	retries map[string]int // unit → restarts systemd refused in a row
	// destination → content a unit did not survive (rejected.go)
	rejected map[string]rejection
	started  int                 // batches started, for tests
	files    map[string][]string // unit → the files it reads (Reconcile)
	// next took over at a reload: what this Rollout still gets goes there.
	next *Rollout
}

// batch is the set of changes one restart of a unit applies.
type batch struct {
	unit    string
	changes []Change  // one per destination, first arrival order
	share   float64   // the batch's place in the splay, in [0, 1)
	changed time.Time // the last change's arrival
	retry   time.Time // a retry's backoff ends: not due before (requeue)
	due     time.Time
	// resumed: a restart an earlier hostd began at begun and did not
	// finish; it is checked rather than restarted again (startup.go).
	resumed bool
	begun   time.Time
}

func (b *batch) add(c Change) {
	for _, have := range b.changes {
		if have.Destination == c.Destination {
			// The same file again: only the first change's Previous is
			// what the unit ran on before this batch; a later one is
			// content the unit never ran on. Keep the first, even nil.
			return
		}
	}
	b.changes = append(b.changes, c)
}

// destinationList is the batch's files, sorted.
func (b *batch) destinationList() []string {
	names := make([]string, len(b.changes))
	for i, c := range b.changes {
		names[i] = c.Destination
	}
	sort.Strings(names)
	return names
}

// destinations is the batch's files as an event's Cause.
func (b *batch) destinations() string { return strings.Join(b.destinationList(), ", ") }

// New returns a Rollout restarting through opts.Restarter, putting previous
// content back with opts.Restore and reporting to opts.Sink.
func New(opts Options) *Rollout {
	opts = opts.withDefaults()
	c := newCrew()
	return &Rollout{
		opts:     opts,
		wake:     make(chan struct{}, 1),
		crew:     c,
		stopping: c.stopping,
		pending:  make(map[string]*batch),
		busy:     make(map[string]bool),
		retries:  make(map[string]int),
		rejected: make(map[string]rejection),
		files:    make(map[string][]string),
	}
}

// Submit schedules a restart of each change's unit. It never blocks: the
// restart runs later in Run. Changes without a unit are ignored.
func (r *Rollout) Submit(changes ...Change) {
	if next := r.successor(); next != nil {
		next.Submit(changes...)
		return
	}
	now := r.opts.Now()
	r.mu.Lock()
	touched := make(map[string]bool)
	for _, c := range changes {
		if c.Unit == "" || !r.manages(c.Unit) {
			continue
		}
		b := r.pending[c.Unit]
		if b == nil {
			b = &batch{unit: c.Unit, share: r.opts.Rand()}
			r.pending[c.Unit] = b
		}
		b.add(c)
		// Every change restarts the debounce; the splay is chosen once per
		// batch so the announced time does not jump around.
		b.changed, b.retry = now, time.Time{}
		b.due = r.batchDue(b)
		touched[c.Unit] = true
	}
	// Announced before the lock is let go, so that Run, which takes a due
	// batch under it, cannot start the batch (and report its restart)
	// before the announcement is out. The sinks only record.
	for unit := range touched {
		b := r.pending[unit]
		r.opts.Sink.Publish(event.Pending{Time: now, Unit: unit, Due: b.due, Cause: b.destinations()})
	}
	r.mu.Unlock()
	r.poke()
}

// batchDue is when batch b may start under this Rollout's policy: debounce
// after its last change (or, for a retry, once its backoff ends), then the
// window and the batch's share of the splay (schedule.go).
func (r *Rollout) batchDue(b *batch) time.Time {
	return r.dueAt(later(b.changed.Add(r.opts.Debounce), b.retry), b.share)
}

func (r *Rollout) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run starts each batch when it is due, at most one per unit at a time,
// until ctx ends. The restarts under way then get StopGrace to finish (with
// their health check and rollback): leaving a unit half-restarted with a
// change it does not survive would be worse. After that Run stops waiting
// for them; their Tracker record stays, and the next start checks the unit
// (Reconcile). When systemd stops answering during a health check while
// stopping, the check ends early: nothing more can be done for the unit
// then. Batches not yet due when ctx ends are dropped; Reconcile finds them
// again from the files. After a HandOver, Run returns at once: the restarts
// under way report to the next Rollout.
func (r *Rollout) Run(ctx context.Context) error {
	var heartbeat <-chan time.Time
	if r.opts.Heartbeat != nil && r.opts.HeartbeatInterval > 0 {
		ticker := time.NewTicker(r.opts.HeartbeatInterval)
		defer ticker.Stop()
		heartbeat = ticker.C
	}
	for {
		r.beat()
		next := r.startDue()
		var timer <-chan time.Time
		if !next.IsZero() {
			timer = r.opts.Until(next)
		}
		select {
		case <-ctx.Done():
			r.finish(heartbeat)
			return nil
		case <-r.wake:
		case <-timer:
		case <-heartbeat:
		}
	}
}

func (r *Rollout) beat() {
	if r.opts.Heartbeat != nil {
		r.opts.Heartbeat()
	}
}

// finish waits for the restarts under way, StopGrace at most, unless a
// HandOver passed them on.
func (r *Rollout) finish(heartbeat <-chan time.Time) {
	if r.successor() != nil {
		return
	}
	r.crew.stop()
	grace := r.opts.Until(r.opts.Now().Add(r.opts.StopGrace))
	for r.restarting() > 0 {
		r.beat()
		select {
		case <-r.wake:
		case <-heartbeat:
		case <-grace:
			// Their waits end now; each batch keeps its record.
			r.crew.abandon()
			grace = nil
		}
	}
}

// Wait waits until every restart this Rollout started has ended; call it
// after Run has returned.
func (r *Rollout) Wait() { r.applies.Wait() }

// startDue starts every due batch whose unit is idle and returns the time
// the next pending batch is due (zero when none waits).
func (r *Rollout) startDue() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	var next time.Time
	for unit, b := range r.pending {
		if r.busy[unit] {
			continue // picked up again when the running restart ends
		}
		if b.due.After(now) {
			if next.IsZero() || b.due.Before(next) {
				next = b.due
			}
			continue
		}
		delete(r.pending, unit)
		r.busy[unit] = true
		r.started++
		r.applies.Add(1)
		dests := b.destinationList()
		go func() {
			defer r.applies.Done()
			ctx := r.crew.ctx
			r.begin(b)
			r.apply(ctx, b)
			if ctx.Err() == nil {
				r.settle(ctx, b, dests)
			}
			r.release(unit)
		}()
	}
	return next
}

func (r *Rollout) batchesStarted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started
}

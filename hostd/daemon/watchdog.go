package daemon

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Names of the loops whose progress feeds systemd's watchdog.
const (
	loopMain    = "main loop"
	loopRender  = "render loop"
	loopRollout = "rollout loop"
)

// watchdog feeds systemd's watchdog (WATCHDOG=1) from real progress, not
// from a timer of its own: every loop that beats (the main loop, the render
// loop, the rollout loop) must have beaten within the last half interval.
// When one has not, WATCHDOG=1 is held back, and systemd kills and restarts
// a hostd that stays stuck for WatchdogSec. A loop that has ended (a
// renderer stopped for a reload, the main loop once stopping) is retired
// and no longer waited for; its next beat, from a new loop, counts again.
type watchdog struct {
	interval time.Duration // systemd's WatchdogSec; 0: no watchdog
	logger   *slog.Logger
	now      func() time.Time

	mu    sync.Mutex
	beats map[string]time.Time // loop → last beat
	late  map[string]bool      // loops reported late in the log
}

func newWatchdog(interval time.Duration, logger *slog.Logger) *watchdog {
	return &watchdog{interval: interval, logger: logger, now: time.Now, beats: map[string]time.Time{}, late: map[string]bool{}}
}

// period is how often a loop must beat; zero without a watchdog.
func (w *watchdog) period() time.Duration { return w.interval / 4 }

// beater returns the heartbeat of the named loop, or nil without a
// watchdog.
func (w *watchdog) beater(name string) func() {
	if w.interval <= 0 {
		return nil
	}
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.beats[name] = w.now()
	}
}

// retire stops waiting for the named loop, which has ended.
func (w *watchdog) retire(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.beats, name)
	delete(w.late, name)
}

// run sends WATCHDOG=1 through notify every half interval while every loop
// is on time, until ctx ends.
func (w *watchdog) run(ctx context.Context, notify func(string)) {
	if w.interval <= 0 {
		return
	}
	ticker := time.NewTicker(w.interval / 2)
	defer ticker.Stop()
	for {
		w.feed(notify)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// feed sends WATCHDOG=1 unless a loop is late, and reports whether it did.
func (w *watchdog) feed(notify func(string)) bool {
	if len(w.lateLoops()) > 0 {
		return false
	}
	notify(notifyWatchdog)
	return true
}

// lateLoops returns the loops that have not beaten for half an interval,
// logging each once when it falls behind and once when it catches up.
func (w *watchdog) lateLoops() []string {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	var late []string
	for name, last := range w.beats {
		behind := now.Sub(last) > w.interval/2
		switch {
		case behind && !w.late[name]:
			w.logger.Warn("no progress: not feeding systemd's watchdog; systemd restarts hostd if this lasts", "loop", name, "since", last.Format(time.RFC3339))
		case !behind && w.late[name]:
			w.logger.Info("progress again: feeding systemd's watchdog", "loop", name)
		}
		w.late[name] = behind
		if behind {
			late = append(late, name)
		}
	}
	slices.Sort(late)
	return late
}

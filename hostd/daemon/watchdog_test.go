package daemon

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
)

// A loop that stops beating stops the feed: systemd then restarts the
// stuck hostd. A loop that ended is retired and waited for no more.
func TestTheWatchdogIsFedOnlyWhileEveryLoopMakesProgress(t *testing.T) {
	logs := &logbuf.Buffer{}
	w := newWatchdog(time.Minute, slog.New(slog.NewTextHandler(logs, nil)))
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	w.now = func() time.Time { return now }
	notes := newRecorder()
	notify := func(s string) { notes.Notify(s) }

	render, rollout := w.beater(loopRender), w.beater(loopRollout)
	render()
	rollout()
	now = now.Add(20 * time.Second)
	if !w.feed(notify) {
		t.Fatal("not fed although every loop beat within half the interval")
	}

	rollout() // the render loop is stuck
	now = now.Add(20 * time.Second)
	if w.feed(notify) {
		t.Fatal("fed although the render loop made no progress for 40s of a 1m watchdog")
	}
	if !strings.Contains(logs.String(), "loop=\"render loop\"") {
		t.Errorf("the stuck loop must be named in the log:\n%s", logs.String())
	}
	if n := notes.count(notifyWatchdog); n != 1 {
		t.Errorf("WATCHDOG=1 sent %d times, want once", n)
	}

	w.retire(loopRender) // the renderer was stopped for a reload
	if !w.feed(notify) {
		t.Error("a retired loop still holds the watchdog back")
	}
	render() // the new renderer beats: it counts again
	now = now.Add(40 * time.Second)
	rollout()
	if w.feed(notify) {
		t.Error("the new render loop is not watched")
	}
}

func TestWithoutAWatchdogNothingBeats(t *testing.T) {
	w := newWatchdog(0, slog.New(slog.DiscardHandler))
	if w.beater(loopMain) != nil || w.period() != 0 {
		t.Error("with the watchdog off, loops must not be asked to beat")
	}
}

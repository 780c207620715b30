package rollout_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/runtest"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
)

// These tests are about the order of what a Rollout says: status and the
// metrics keep the last word on a unit, so an announcement that arrives
// after what it announced leaves them wrong.

// holdWindow is how long the sink holds a batch's announcement back while
// the test watches whether Run starts the batch meanwhile. It bounds a check
// that nothing happens; nothing waits on it to happen.
const holdWindow = time.Second

// askingSystemd is scriptedSystemd that says when a restart is asked for.
type askingSystemd struct {
	*scriptedSystemd
	asked chan struct{}
}

func (s askingSystemd) TryRestart(ctx context.Context, unit string) (restart.Result, error) {
	select {
	case s.asked <- struct{}{}:
	default:
	}
	return s.scriptedSystemd.TryRestart(ctx, unit)
}

// heldAnnouncement holds the first Pending in Publish for holdWindow, or
// until a restart is asked for meanwhile, and says which came first; every
// event then goes on to events.
type heldAnnouncement struct {
	asked    <-chan struct{}
	entered  chan struct{} // closed once the first Pending is being held
	overtook chan bool     // true: a restart was asked for while it was held
	events   *eventtest.Recorder[event.Event]
	once     sync.Once
}

func (h *heldAnnouncement) Publish(e event.Event) {
	if _, ok := e.(event.Pending); ok {
		h.once.Do(func() {
			close(h.entered)
			select {
			case <-h.asked:
				h.overtook <- true
			case <-time.After(holdWindow):
				h.overtook <- false
			}
		})
	}
	h.events.Publish(e)
}

// Submit announces a batch (event.Pending) before Run can start it. Run is
// started while Submit is still announcing a batch that is due at once: it
// must not restart the unit before the announcement is out, or the Pending
// reaches status after the restart it announced and the unit shows as
// pending for a restart that already ran.
func TestSubmitAnnouncesABatchBeforeRunCanStartIt(t *testing.T) {
	sd := askingSystemd{scriptedSystemd: &scriptedSystemd{job: event.ResultDone}, asked: make(chan struct{}, 1)}
	sink := &heldAnnouncement{asked: sd.asked, entered: make(chan struct{}), overtook: make(chan bool, 1), events: eventtest.New[event.Event]()}
	r := rollout.New(rollout.Options{
		Restarter: sd, Sink: sink,
		ActiveTimeout: 5 * time.Second, StableFor: 10 * time.Millisecond, WatchInterval: 10 * time.Millisecond,
	})
	go r.Submit(rollout.Change{Unit: "agent.service", Destination: "/etc/agent.conf"})
	<-sink.entered
	runtest.UntilEnd(t, 10*time.Second, nil, r.Run)
	if <-sink.overtook {
		t.Fatal("Run restarted agent.service while Submit was still announcing the batch: its Pending would reach status after the restart")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	eventtest.Take[event.Pending](t, ctx, sink.events)
	if done := eventtest.Take[event.Restart](t, ctx, sink.events); done.Result != event.ResultDone {
		t.Fatalf("the restart after the announcement: %+v, want done", done)
	}
}

package daemon

import (
	"context"
	"errors"
)

// part is one long-running piece of the daemon (the status server, the
// metrics server, the pipeline...) with its own lifetime, so a reload can
// replace it without touching the others.
type part struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
}

// partFailure is a part that ended while nobody asked it to stop.
type partFailure struct {
	name string
	err  error
}

// launch runs run in its own goroutine under a child of ctx. If run returns
// before the part is stopped, the failure goes to failed.
func launch(ctx context.Context, name string, failed chan<- partFailure, run func(context.Context) error) *part {
	ctx, cancel := context.WithCancel(ctx)
	p := &part{name: name, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		err := run(ctx)
		if ctx.Err() != nil {
			return // stopped on purpose
		}
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		select {
		case failed <- partFailure{name: name, err: err}:
		default: // the daemon is already stopping for another failure
		}
	}()
	return p
}

// restartPart starts a part, which the caller stopped, with next. When that
// fails it logs why with failedMsg and starts the part again with prev; when
// that fails too, the daemon stops (as for a part that ended on its own) and
// no part runs. It returns the part, the configuration it runs with, and
// whether that is next.
func restartPart[C any](d *daemon, name, failedMsg string, start func(C) (*part, error), next, prev C) (*part, C, bool) {
	p, err := start(next)
	if err == nil {
		return p, next, true
	}
	d.logger.Error(failedMsg, "err", err)
	if p, err = start(prev); err != nil {
		d.fail(name, err)
	}
	return p, prev, false
}

// stop cancels the part and waits until it has ended. A nil part is fine.
func (p *part) stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
}

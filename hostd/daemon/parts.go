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

// stop cancels the part and waits until it has ended. A nil part is fine.
func (p *part) stop() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
}

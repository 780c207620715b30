package render

import (
	"context"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
)

// heartbeat returns a channel that ticks every HeartbeatInterval while Run's
// loop waits (nil without a Heartbeat: it never ticks), and its stop.
func (r *Renderer) heartbeat() (<-chan time.Time, func()) {
	if r.opts.Heartbeat == nil || r.opts.HeartbeatInterval <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(r.opts.HeartbeatInterval)
	return t.C, t.Stop
}

// beat tells whoever watches Run's loop that it is alive.
func (r *Renderer) beat() {
	if r.opts.Heartbeat != nil {
		r.opts.Heartbeat()
	}
}

// sleep waits d, beating on every tick of beats, or until ctx ends.
func (r *Renderer) sleep(ctx context.Context, d time.Duration, beats <-chan time.Time) error {
	return backoff.SleepTicking(ctx, d, beats, r.beat)
}

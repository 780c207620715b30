package daemon

import (
	"context"

	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/write"
)

// The rollout runs as a part of its own, not inside the pipeline: a reload
// replaces the pipeline without waiting for a restart under way, and the
// old rollout hands its batches to the new one.

// newRollout returns a rollout with cfg's restart policy, restarting through
// sd and recording in the daemon's tracker.
func (d *daemon) newRollout(cfg *config.Config, sd *restart.LazyConn) *rollout.Rollout {
	opts := rolloutOptions(cfg)
	opts.Restarter, opts.Restore, opts.Sink = sd, write.Put, d.sink
	opts.Running = d.tracker
	opts.StopGrace = d.opts.stopGrace
	opts.Heartbeat = d.watchdog.beater(loopRollout)
	opts.HeartbeatInterval = d.watchdog.period()
	return rollout.New(opts)
}

// startRollout runs roll until the part is stopped; stopping waits for a
// restart under way, the stop grace at most.
func (d *daemon) startRollout(ctx context.Context, roll *rollout.Rollout) *part {
	return launch(ctx, "rollout", d.failed, func(ctx context.Context) error {
		defer d.watchdog.retire(loopRollout)
		return roll.Run(ctx)
	})
}

// replaceRollout moves the schedule to cfg's restart policy: a new rollout
// takes over the old one's batches, and the restarts under way, which end on
// the old one's systemd connection.
func (d *daemon) replaceRollout(ctx context.Context, cfg *config.Config) {
	old, oldPart, oldSystemd := d.cur.rollout, d.cur.rolloutPart, d.cur.systemd
	if restartOptions(cfg.Restart) != restartOptions(d.cur.restartCfg) {
		d.cur.systemd = newSystemd(cfg.Restart)
		d.views.systemd.Store(d.cur.systemd)
	}
	d.cur.restartCfg = cfg.Restart
	next := d.newRollout(cfg, d.cur.systemd)
	old.HandOver(next)
	oldPart.stop() // returns at once: everything was handed over
	d.cur.rollout, d.cur.rolloutPart = next, d.startRollout(ctx, next)
	if d.cur.systemd != oldSystemd {
		go func() {
			old.Wait()
			oldSystemd.Close()
		}()
	}
}

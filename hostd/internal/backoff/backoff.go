// Package backoff owns hostd's wait between failed attempts: how long the
// wait is (doubled per failure and capped, with jitter where a fleet of
// hosts must not retry in step), the bounds a stage's options give it, and
// the sleep that a cancelled context ends early.
//
// It does not count failures or decide what a failure is: the stage that
// retries (auth, render, report, and rollout's restarts and process reads)
// does. vaultproxy uses only the sleep, for the delay of an answer saying
// Vault is unavailable.
package backoff

import (
	"context"
	"time"
)

// Delay returns the wait before attempt number failures+1: Doubled with
// "equal jitter" (a point in its upper half chosen by random, which returns
// a value in [0, 1)), for a wait a fleet must not spend in step.
func Delay(failures int, base, ceiling time.Duration, random func() float64) time.Duration {
	d := Doubled(failures, base, ceiling)
	half := d / 2
	return half + time.Duration(random()*float64(d-half))
}

// Doubled returns base doubled for each failure after the first, capped at
// ceiling: base after one failure, 2·base after two, and so on. It is the
// wait without jitter, for a retry that only this host feels (a restart).
func Doubled(failures int, base, ceiling time.Duration) time.Duration {
	d := base
	for i := 1; i < failures && d < ceiling; i++ {
		if d > ceiling/2 {
			return ceiling // doubling would pass it, or overflow
		}
		d *= 2
	}
	return min(d, ceiling)
}

// The bounds of a stage's wait when its options leave them out: the first
// wait, and the cap, which template_config.max_backoff sets for every stage
// that retries with it (hostd/config).
const (
	DefaultBase    = time.Second
	DefaultCeiling = 5 * time.Minute
)

// Bounds returns the bounds a stage waits between: a zero or negative base
// or ceiling is replaced by DefaultBase or DefaultCeiling, and the ceiling
// is raised to the base when lower.
func Bounds(base, ceiling time.Duration) (time.Duration, time.Duration) {
	if base <= 0 {
		base = DefaultBase
	}
	if ceiling <= 0 {
		ceiling = DefaultCeiling
	}
	return base, max(ceiling, base)
}

// Sleep waits d, or until ctx is done, when it returns ctx's error.
func Sleep(ctx context.Context, d time.Duration) error {
	return SleepTicking(ctx, d, nil, nil)
}

// SleepTicking is Sleep that calls onTick on every tick of ticks meanwhile,
// for a loop that must show it is alive while it waits. A nil ticks never
// ticks.
func SleepTicking(ctx context.Context, d time.Duration, ticks <-chan time.Time, onTick func()) error {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case <-ticks:
			onTick()
		}
	}
}

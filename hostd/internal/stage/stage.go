// Package stage holds what the Options of hostd's stages (auth, vaultproxy,
// render, rollout, report) have in common, with the defaults a stage fills in
// when hostd/daemon or a test leaves them out: where a stage reports
// (Reporting), its clock, waits and randomness (Clock), and the rule that a
// zero or negative setting takes its default (OrDefault).
//
// It imports only hostd/event of hostd: the stage packages import it, so it
// never imports one of them or hostd/config.
package stage

import (
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// Reporting is where a stage reports what happened: events for the report
// side (metrics, status, the fleet report) and log lines.
type Reporting struct {
	Sink   event.Sink   // default event.Discard
	Logger *slog.Logger // default: discard
}

// WithDefaults returns r with every field left out filled in.
func (r Reporting) WithDefaults() Reporting {
	if r.Sink == nil {
		r.Sink = event.Discard
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

// Clock is a stage's time, waits and randomness, injectable for tests.
type Clock struct {
	Now  func() time.Time // default time.Now
	Rand func() float64   // a number in [0, 1), for jitter and splay; default math/rand/v2's Float64
	// Until returns a channel that receives once the time is t or later,
	// for the stages that wait until something is due (rollout, report);
	// default a timer for time.Until(t), on the real clock. Inject it
	// together with Now: a fake Now with the real Until waits for the real
	// time to reach the fake one.
	Until func(t time.Time) <-chan time.Time
}

// WithDefaults returns c with every field left out filled in.
func (c Clock) WithDefaults() Clock {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Until == nil {
		c.Until = untilReal
	}
	return c
}

func untilReal(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// OrDefault returns v, or def when v is zero or negative: the rule for a
// stage's durations and counts.
func OrDefault[T ~int | ~int64](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

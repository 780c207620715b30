package restart

import (
	"context"
	"errors"
	"fmt"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
)

// Job timeouts when Options.JobTimeout is zero: a restart is a stop and a
// start, so hostd waits for the unit's TimeoutStopSec plus TimeoutStartSec
// plus jobTimeoutMargin; DefaultJobTimeout when the unit's timeouts cannot be
// read or one of them is infinite.
const (
	DefaultJobTimeout = 5 * time.Minute
	jobTimeoutMargin  = 30 * time.Second
	// maxUnitTimeout (in µs, as systemd reports them) caps each timeout
	// taken from the unit: one longer than a day is treated as infinite.
	maxUnitTimeout = uint64(24 * time.Hour / time.Microsecond)
)

// Errors a caller can tell apart with errors.Is.
var (
	ErrNoSuchUnit = errors.New("no such unit")
	ErrJobFailed  = errors.New("restart job did not succeed")
	ErrJobTimeout = errors.New("no restart job result in time")
)

// Result is the outcome of one restart job.
type Result struct {
	Unit string
	// Job is systemd's job result: event.ResultDone, event.ResultFailed,
	// canceled, timeout, dependency, skipped (or newer ones);
	// event.ResultJobTimeout when none arrived within the job timeout;
	// empty when the job could not be queued.
	Job string
	// Duration runs from queueing the job to its result. For a
	// Type=simple service "done" means the process was started, not that it
	// keeps running: read UnitState afterwards.
	Duration time.Duration
}

// TryRestart restarts unit only if it is running (active, activating or
// reloading): for a unit that is inactive or failed, systemd turns the job
// into a no-op and reports "done" without starting it. An operator's stop
// issued meanwhile is respected the same way. polkit verb: "try-restart".
// Otherwise as Restart.
func (c *Conn) TryRestart(ctx context.Context, unit string) (Result, error) {
	return c.runJob(ctx, unit, "try-restart", func(conn *sddbus.Conn, ch chan<- string) (int, error) {
		return conn.TryRestartUnitContext(ctx, unit, "replace", ch)
	})
}

// Restart queues a restart job for unit, which starts it if it is not
// running (mode "replace": a pending job for the unit is replaced), and waits
// for its result, at most the job timeout. The error is nil only when
// systemd reports "done"; Result.Job says what happened either way. polkit
// verb: "restart".
func (c *Conn) Restart(ctx context.Context, unit string) (Result, error) {
	return c.runJob(ctx, unit, "restart", func(conn *sddbus.Conn, ch chan<- string) (int, error) {
		return conn.RestartUnitContext(ctx, unit, "replace", ch)
	})
}

type queueFunc func(conn *sddbus.Conn, result chan<- string) (int, error)

func (c *Conn) runJob(ctx context.Context, unit, verb string, queue queueFunc) (Result, error) {
	res := Result{Unit: unit}
	conn, err := c.connection(ctx)
	if err != nil {
		return res, err
	}
	timeout := c.JobTimeout(ctx, unit)
	// Buffered: go-systemd delivers the result while holding its job lock,
	// so an unread channel would stall every other job on this connection
	// (and the result may come after we stopped waiting).
	done := make(chan string, 1)
	start := time.Now()
	if _, err := queue(conn, done); err != nil {
		return res, fmt.Errorf("%s %s: %w", verb, unit, callError(err))
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res.Job = <-done:
		res.Duration = time.Since(start)
		if res.Job != event.ResultDone {
			return res, fmt.Errorf("%s %s: systemd job result %q: %w", verb, unit, res.Job, ErrJobFailed)
		}
		return res, nil
	case <-timer.C:
		res.Job, res.Duration = event.ResultJobTimeout, time.Since(start)
		return res, fmt.Errorf("%s %s: %w after %s (systemd may still be running the job)", verb, unit, ErrJobTimeout, timeout)
	case <-ctx.Done():
		res.Duration = time.Since(start)
		return res, fmt.Errorf("%s %s: waiting for the job: %w", verb, unit, ctx.Err())
	}
}

// JobTimeout is how long a restart of unit is waited for: Options.JobTimeout
// when set, else the unit's TimeoutStopSec + TimeoutStartSec + 30s, read from
// systemd now (DefaultJobTimeout for a unit that is not a service, whose
// timeouts cannot be read, or where one is infinite or above a day).
func (c *Conn) JobTimeout(ctx context.Context, unit string) time.Duration {
	if c.jobTimeout > 0 {
		return c.jobTimeout
	}
	conn, err := c.connection(ctx)
	if err != nil {
		return DefaultJobTimeout
	}
	svc, err := conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return DefaultJobTimeout
	}
	start, okStart := svc["TimeoutStartUSec"].(uint64)
	stop, okStop := svc["TimeoutStopUSec"].(uint64)
	// Infinity is MaxUint64; anything beyond maxUnitTimeout is as good.
	if !okStart || !okStop || start == 0 || stop == 0 || start > maxUnitTimeout || stop > maxUnitTimeout {
		return DefaultJobTimeout
	}
	total := time.Duration(start+stop) * time.Microsecond
	return total + jobTimeoutMargin
}

package restart

import (
	"context"
	"fmt"
	"time"
)

// Process is a unit's state together with the start of its current run:
// what hostd compares with the files the unit reads.
type Process struct {
	State
	// Started is when the unit's main process started
	// (ExecMainStartTimestamp) or, for a unit without a main process, when
	// the unit last became active (ActiveEnterTimestamp); zero when the unit
	// is not running.
	Started time.Time
}

// Running reports whether the unit is up (active or reloading) with a known
// start: a process of its current run has read its files. A unit that is
// stopped, failed or still starting reads its files when it starts.
func (p Process) Running() bool {
	return (p.Active() || p.ActiveState == reloadingState) && !p.Started.IsZero()
}

// MainProcess reads unit's state and when its current run started.
func (c *Conn) MainProcess(ctx context.Context, unit string) (Process, error) {
	st, err := c.UnitState(ctx, unit)
	if err != nil {
		return Process{State: st}, err
	}
	p := Process{State: st}
	conn, err := c.connection(ctx)
	if err != nil {
		return p, err
	}
	// A service's start time is kept after its process ended (a failed
	// unit still tells when its last process started).
	if IsService(unit) {
		prop, err := conn.GetServicePropertyContext(ctx, unit, "ExecMainStartTimestamp")
		if err != nil {
			return p, fmt.Errorf("start time of %s: %w", unit, callError(err))
		}
		p.Started = usecTime(prop.Value.Value())
	}
	if p.Started.IsZero() && st.Active() {
		prop, err := conn.GetUnitPropertyContext(ctx, unit, "ActiveEnterTimestamp")
		if err != nil {
			return p, fmt.Errorf("start time of %s: %w", unit, callError(err))
		}
		p.Started = usecTime(prop.Value.Value())
	}
	return p, nil
}

// usecTime turns systemd's timestamps (microseconds since the epoch, 0 for
// never) into a time.
func usecTime(v any) time.Time {
	usec, ok := v.(uint64)
	if !ok || usec == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(usec))
}

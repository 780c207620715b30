package restart

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
)

// State is a unit's state as systemd reports it.
type State struct {
	LoadState    string // loaded, not-found, masked, ...
	ActiveState  string // active, activating, deactivating, inactive, failed, reloading
	SubState     string // for services: running, exited, dead, failed, auto-restart, ...
	InvocationID string // hex; changes on every start of the unit
	NRestarts    uint32 // automatic restarts (Restart=) since the unit was last started by a job
	MainPID      uint32
	// Result is a service's last result: success (it ran or was stopped
	// cleanly), exit-code, signal, timeout, core-dump, start-limit-hit...
	Result string
}

// The LoadState, ActiveState and SubState values hostd tells apart, as
// systemd spells them, and the suffix of a service unit's name.
const (
	notFoundLoadState = "not-found"
	activeState       = "active"
	inactiveState     = "inactive"
	failedState       = "failed"
	deactivatingState = "deactivating"
	reloadingState    = "reloading"
	runningSubState   = "running"
	serviceSuffix     = ".service"
)

// Active reports whether the unit is active.
func (s State) Active() bool { return s.ActiveState == activeState }

// Inactive reports whether the unit is stopped (and did not fail).
func (s State) Inactive() bool { return s.ActiveState == inactiveState }

// Failed reports whether the unit is in systemd's failed state.
func (s State) Failed() bool { return s.ActiveState == failedState }

// Changing reports whether the unit is being stopped or reloaded.
func (s State) Changing() bool {
	return s.ActiveState == deactivatingState || s.ActiveState == reloadingState
}

// Up reports whether unit is active and, for a service, its main process
// runs (a oneshot service that exited is not up).
func (s State) Up(unit string) bool {
	return s.Active() && (!IsService(unit) || s.SubState == runningSubState)
}

// IsService reports whether unit is a service, the only kind of unit with
// a main process.
func IsService(unit string) bool { return strings.HasSuffix(unit, serviceSuffix) }

// UnitState reads the unit's load, active and sub state, its invocation id
// and, for services, NRestarts, the main PID and the result.
func (c *Conn) UnitState(ctx context.Context, unit string) (State, error) {
	conn, err := c.connection(ctx)
	if err != nil {
		return State{}, err
	}
	props, err := conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return State{}, fmt.Errorf("state of %s: %w", unit, callError(err))
	}
	st := State{
		LoadState:    stringProp(props, "LoadState"),
		ActiveState:  stringProp(props, "ActiveState"),
		SubState:     stringProp(props, "SubState"),
		InvocationID: bytesPropHex(props, "InvocationID"),
	}
	// systemd answers for any well-formed name, loading it on demand.
	if st.LoadState == notFoundLoadState {
		return st, fmt.Errorf("state of %s: %w", unit, ErrNoSuchUnit)
	}
	if !IsService(unit) {
		return st, nil
	}
	svc, err := conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return st, fmt.Errorf("service state of %s: %w", unit, callError(err))
	}
	st.NRestarts = uint32Prop(svc, "NRestarts")
	st.MainPID = uint32Prop(svc, "MainPID")
	st.Result = stringProp(svc, "Result")
	return st, nil
}

func stringProp(props map[string]any, name string) string {
	s, _ := props[name].(string)
	return s
}

func uint32Prop(props map[string]any, name string) uint32 {
	n, _ := props[name].(uint32)
	return n
}

func bytesPropHex(props map[string]any, name string) string {
	b, _ := props[name].([]byte)
	return hex.EncodeToString(b)
}

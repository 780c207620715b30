// Package restart restarts one systemd unit over D-Bus, waits for the job's
// result with a timeout, and reads the unit's state back.
//
// It owns the D-Bus connection to systemd (system bus, or a user manager's
// bus) and nothing else: when to restart, and what to do when the unit does
// not come back, is hostd/rollout's business. It never starts, stops or
// changes a unit other than by the restart it is asked for.
package restart

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Bus names accepted in Options.Bus.
const (
	SystemBus = "system"
	UserBus   = "user"
)

// DefaultJobTimeout is used when Options.JobTimeout is zero.
const DefaultJobTimeout = 90 * time.Second

// JobTimeout is Result.Job when no job result arrived within the job
// timeout. systemd's job may still be running; systemd's own "timeout"
// result is a different thing (its JobTimeoutSec fired).
const JobTimeout = "job_timeout"

// Errors a caller can tell apart with errors.Is.
var (
	ErrNoSuchUnit = errors.New("no such unit")
	ErrJobFailed  = errors.New("restart job did not succeed")
	ErrJobTimeout = errors.New("no restart job result in time")
)

// Options chooses the bus and the job timeout.
type Options struct {
	// Bus is "system" (default: PID 1's manager) or "user" (a user
	// manager, reached over the session bus).
	Bus string
	// Address overrides the bus's D-Bus address, e.g.
	// "unix:path=/run/user/1000/bus". Empty: $DBUS_SYSTEM_BUS_ADDRESS or
	// /run/dbus/system_bus_socket for the system bus; for the user bus
	// $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus, else
	// /run/user/<uid>/bus. A bus daemon is never launched.
	Address string
	// JobTimeout bounds the wait for the restart job's result.
	JobTimeout time.Duration
}

// Result is the outcome of one restart job.
type Result struct {
	Unit string
	// Job is systemd's job result: done, canceled, timeout, failed,
	// dependency, skipped (or newer ones); JobTimeout when none arrived in
	// time; empty when the job could not be queued.
	Job string
	// Duration runs from queueing the job to its result. For a
	// Type=simple service "done" means the process was started, not that it
	// keeps running: read UnitState afterwards.
	Duration time.Duration
}

// State is a unit's state as systemd reports it.
type State struct {
	LoadState    string // loaded, not-found, masked, ...
	ActiveState  string // active, activating, deactivating, inactive, failed, reloading
	SubState     string // for services: running, exited, dead, failed, auto-restart, ...
	InvocationID string // hex; changes on every start of the unit
	NRestarts    uint32 // automatic restarts (Restart=) since the unit was last started by a job
	MainPID      uint32
}

// Active reports ActiveState == "active".
func (s State) Active() bool { return s.ActiveState == "active" }

// Conn is a connection to one systemd manager. It is safe for concurrent use
// and re-dials when the bus connection was lost.
type Conn struct {
	address    string
	jobTimeout time.Duration

	mu   sync.Mutex
	conn *sddbus.Conn
}

// Dial connects to the manager on the chosen bus. ctx bounds the connection
// handshake only; the connection lives until Close.
func Dial(ctx context.Context, opts Options) (*Conn, error) {
	address, err := busAddress(opts)
	if err != nil {
		return nil, err
	}
	c := &Conn{address: address, jobTimeout: opts.JobTimeout}
	if c.jobTimeout <= 0 {
		c.jobTimeout = DefaultJobTimeout
	}
	if _, err := c.connection(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Address is the D-Bus address this Conn talks to.
func (c *Conn) Address() string { return c.address }

// Close closes the connection.
func (c *Conn) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

func busAddress(opts Options) (string, error) {
	if opts.Address != "" {
		return opts.Address, nil
	}
	switch opts.Bus {
	case "", SystemBus:
		if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
			return a, nil
		}
		return "unix:path=/run/dbus/system_bus_socket", nil
	case UserBus:
		if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
			return a, nil
		}
		if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
			return "unix:path=" + dir + "/bus", nil
		}
		return "unix:path=/run/user/" + strconv.Itoa(os.Getuid()) + "/bus", nil
	default:
		return "", fmt.Errorf("restart: bus %q: must be %q or %q", opts.Bus, SystemBus, UserBus)
	}
}

// connection returns the live connection, dialling a new one when there is
// none or the old one was lost (bus daemon restarted, systemd re-executed).
func (c *Conn) connection(ctx context.Context) (*sddbus.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn != nil && c.conn.Connected() {
		return c.conn, nil
	}
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
	conn, err := sddbus.NewConnection(func() (*dbus.Conn, error) { return dialBus(ctx, c.address) })
	if err != nil {
		return nil, fmt.Errorf("restart: connect to systemd at %s: %w", c.address, err)
	}
	c.conn = conn
	return conn, nil
}

// dialBus opens an authenticated, greeted connection (go-systemd calls it
// twice: one connection for calls, one for signals). When ctx ends during
// the handshake the half-open connection is closed, which unblocks it.
func dialBus(ctx context.Context, address string) (*dbus.Conn, error) {
	connCtx, closeConn := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, closeConn)
	defer stop()
	conn, err := dbus.Dial(address, dbus.WithContext(connCtx))
	if err != nil {
		closeConn()
		return nil, err
	}
	auth := []dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}
	if err := conn.Auth(auth); err != nil {
		conn.Close()
		return nil, handshakeError(ctx, "authenticate", err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, handshakeError(ctx, "hello", err)
	}
	return conn, nil
}

func handshakeError(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", step, ctx.Err())
	}
	return fmt.Errorf("%s: %w", step, err)
}

// Restart queues a restart job for unit (mode "replace": a pending job for
// the unit is replaced) and waits for its result, at most the job timeout.
// The error is nil only when systemd reports "done"; Result.Job says what
// happened either way.
func (c *Conn) Restart(ctx context.Context, unit string) (Result, error) {
	res := Result{Unit: unit}
	conn, err := c.connection(ctx)
	if err != nil {
		return res, err
	}
	// Buffered: go-systemd delivers the result while holding its job lock,
	// so an unread channel would stall every other job on this connection
	// (and the result may come after we stopped waiting).
	done := make(chan string, 1)
	start := time.Now()
	if _, err := conn.RestartUnitContext(ctx, unit, "replace", done); err != nil {
		return res, fmt.Errorf("restart %s: %w", unit, callError(err))
	}
	timer := time.NewTimer(c.jobTimeout)
	defer timer.Stop()
	select {
	case res.Job = <-done:
		res.Duration = time.Since(start)
		if res.Job != "done" {
			return res, fmt.Errorf("restart %s: systemd job result %q: %w", unit, res.Job, ErrJobFailed)
		}
		return res, nil
	case <-timer.C:
		res.Job, res.Duration = JobTimeout, time.Since(start)
		return res, fmt.Errorf("restart %s: %w after %s (systemd may still be running the job)", unit, ErrJobTimeout, c.jobTimeout)
	case <-ctx.Done():
		res.Duration = time.Since(start)
		return res, fmt.Errorf("restart %s: waiting for the job: %w", unit, ctx.Err())
	}
}

// UnitState reads the unit's load, active and sub state, its invocation id
// and, for services, NRestarts and the main PID.
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
	if st.LoadState == "not-found" {
		return st, fmt.Errorf("state of %s: %w", unit, ErrNoSuchUnit)
	}
	if !strings.HasSuffix(unit, ".service") {
		return st, nil
	}
	svc, err := conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return st, fmt.Errorf("service state of %s: %w", unit, callError(err))
	}
	st.NRestarts = uint32Prop(svc, "NRestarts")
	st.MainPID = uint32Prop(svc, "MainPID")
	return st, nil
}

// callError turns systemd's "no such unit" D-Bus error into ErrNoSuchUnit,
// keeping systemd's message.
func callError(err error) error {
	var dbusErr dbus.Error
	if errors.As(err, &dbusErr) && dbusErr.Name == "org.freedesktop.systemd1.NoSuchUnit" {
		return fmt.Errorf("%w: %s", ErrNoSuchUnit, dbusErr.Error())
	}
	return err
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

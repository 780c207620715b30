// Package restart restarts one systemd unit over D-Bus, waits for the job's
// result with a timeout, and reads the unit's state back.
//
// It owns the D-Bus connection to systemd (system bus, or a user manager's
// bus) and nothing else: when to restart, which verb to use, and what to do
// when the unit does not come back, is hostd/rollout's business. It never
// starts, stops or changes a unit other than by the restart it is asked for.
//
// This file holds the connection; lazy.go a connection dialled on first
// use; job.go the restart jobs; state.go and properties.go the unit's state.
package restart

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
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
	// JobTimeout bounds the wait for a restart job's result. Zero: derived
	// from the unit at each restart (see Conn.JobTimeout).
	JobTimeout time.Duration
}

// Conn is a connection to one systemd manager. It is safe for concurrent use
// and re-dials when the bus connection was lost.
type Conn struct {
	address    string
	jobTimeout time.Duration // zero: derived from the unit

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
	c := &Conn{address: address, jobTimeout: max(opts.JobTimeout, 0)}
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

// callError turns systemd's "no such unit" D-Bus error into ErrNoSuchUnit,
// keeping systemd's message.
func callError(err error) error {
	var dbusErr dbus.Error
	if errors.As(err, &dbusErr) && dbusErr.Name == "org.freedesktop.systemd1.NoSuchUnit" {
		return fmt.Errorf("%w: %s", ErrNoSuchUnit, dbusErr.Error())
	}
	return err
}

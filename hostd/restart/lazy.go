package restart

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by a LazyConn's calls after Close.
var ErrClosed = errors.New("restart: systemd connection closed")

// LazyConn is a Conn dialled on first use, so hostd starts (and keeps
// rendering) while the bus is not there yet: a failed dial is tried again
// on the next call. Once dialled it re-dials a lost connection as Conn
// does. It is safe for concurrent use.
type LazyConn struct {
	opts Options

	mu     sync.Mutex
	conn   *Conn
	closed bool
}

// NewLazyConn returns a LazyConn for opts without dialling: one that is
// never used never connects.
func NewLazyConn(opts Options) *LazyConn { return &LazyConn{opts: opts} }

func (l *LazyConn) get(ctx context.Context) (*Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if l.conn == nil {
		conn, err := Dial(ctx, l.opts)
		if err != nil {
			return nil, err
		}
		l.conn = conn
	}
	return l.conn, nil
}

// onConn runs call on the connection, dialling it first if needed; without
// a connection it returns zero and the dial's error.
func onConn[T any](ctx context.Context, l *LazyConn, zero T, call func(*Conn) (T, error)) (T, error) {
	c, err := l.get(ctx)
	if err != nil {
		return zero, err
	}
	return call(c)
}

// TryRestart restarts unit if it is running (see Conn.TryRestart).
func (l *LazyConn) TryRestart(ctx context.Context, unit string) (Result, error) {
	return onConn(ctx, l, Result{Unit: unit}, func(c *Conn) (Result, error) { return c.TryRestart(ctx, unit) })
}

// Restart restarts unit (see Conn.Restart).
func (l *LazyConn) Restart(ctx context.Context, unit string) (Result, error) {
	return onConn(ctx, l, Result{Unit: unit}, func(c *Conn) (Result, error) { return c.Restart(ctx, unit) })
}

// UnitState reads unit's state (see Conn.UnitState).
func (l *LazyConn) UnitState(ctx context.Context, unit string) (State, error) {
	return onConn(ctx, l, State{}, func(c *Conn) (State, error) { return c.UnitState(ctx, unit) })
}

// MainProcess reads unit's state and start (see Conn.MainProcess).
func (l *LazyConn) MainProcess(ctx context.Context, unit string) (Process, error) {
	return onConn(ctx, l, Process{}, func(c *Conn) (Process, error) { return c.MainProcess(ctx, unit) })
}

// Close closes the connection; every later call fails with ErrClosed. A nil
// LazyConn is fine.
func (l *LazyConn) Close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.conn != nil {
		l.conn.Close()
		l.conn = nil
	}
}

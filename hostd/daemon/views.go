package daemon

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/config"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
)

// liveViews gives the status server the authenticator's and systemd's
// current answers; the parts behind them change on reload.
type liveViews struct {
	authn    atomic.Pointer[auth.Authenticator]
	systemd  atomic.Pointer[systemdConn]
	renderer atomic.Pointer[render.Renderer] // nil without templates
	rollout  atomic.Pointer[rollout.Rollout] // nil without units
}

// refresh asks the current renderer to read every secret again now, and
// content a unit did not survive to be tried again.
func (v *liveViews) refresh() error {
	r := v.renderer.Load()
	if r == nil {
		return errors.New("hostd renders no template: nothing to refresh")
	}
	if roll := v.rollout.Load(); roll != nil {
		roll.RetryRejected()
	}
	r.Refresh()
	return nil
}

func (v *liveViews) auth() status.Auth {
	a := v.authn.Load()
	if a == nil {
		return status.Auth{}
	}
	s := a.State()
	return status.Auth{
		Method:        s.Method,
		Authenticated: s.Authenticated,
		TokenExpiry:   s.TokenExpiry,
		Renewable:     s.Renewable,
		LastLogin:     s.LastLogin,
		LastRenewal:   s.LastRenewal,
		LastError:     s.LastError,
		LastErrorTime: s.LastErrorTime,
	}
}

func (v *liveViews) unitState(ctx context.Context, unit string) (string, string, error) {
	s := v.systemd.Load()
	if s == nil {
		return "", "", errors.New("no connection to systemd")
	}
	st, err := s.UnitState(ctx, unit)
	if err != nil {
		return "", "", err
	}
	return st.ActiveState, st.SubState, nil
}

// systemdConn connects to systemd on first use, so hostd starts (and keeps
// rendering) even while the bus is not there yet; a failed dial is tried
// again on the next call.
type systemdConn struct {
	opts restart.Options

	mu     sync.Mutex
	conn   *restart.Conn
	closed bool
}

// newSystemd returns a connection for cfg's restart settings. It dials only
// when first used: without a template naming a unit, never.
func newSystemd(cfg *config.Config) *systemdConn {
	return &systemdConn{opts: restartOptions(cfg.Restart)}
}

func (s *systemdConn) get(ctx context.Context) (*restart.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("systemd connection closed")
	}
	if s.conn == nil {
		conn, err := restart.Dial(ctx, s.opts)
		if err != nil {
			return nil, err
		}
		s.conn = conn
	}
	return s.conn, nil
}

// TryRestart restarts unit if it is running (see restart.Conn.TryRestart).
func (s *systemdConn) TryRestart(ctx context.Context, unit string) (restart.Result, error) {
	c, err := s.get(ctx)
	if err != nil {
		return restart.Result{Unit: unit}, err
	}
	return c.TryRestart(ctx, unit)
}

// Restart restarts unit (see restart.Conn.Restart).
func (s *systemdConn) Restart(ctx context.Context, unit string) (restart.Result, error) {
	c, err := s.get(ctx)
	if err != nil {
		return restart.Result{Unit: unit}, err
	}
	return c.Restart(ctx, unit)
}

// UnitState reads unit's state (see restart.Conn.UnitState).
func (s *systemdConn) UnitState(ctx context.Context, unit string) (restart.State, error) {
	c, err := s.get(ctx)
	if err != nil {
		return restart.State{}, err
	}
	return c.UnitState(ctx, unit)
}

// MainProcess reads unit's state and start (see restart.Conn.MainProcess).
func (s *systemdConn) MainProcess(ctx context.Context, unit string) (restart.Process, error) {
	c, err := s.get(ctx)
	if err != nil {
		return restart.Process{}, err
	}
	return c.MainProcess(ctx, unit)
}

// Close closes the connection; a nil systemdConn is fine.
func (s *systemdConn) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

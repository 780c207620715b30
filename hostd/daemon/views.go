package daemon

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
	"github.com/sigsci-keys/sigsci-keys/hostd/render"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
)

// liveViews gives the status server the authenticator's and systemd's
// current answers; the parts behind them change on reload.
type liveViews struct {
	authn    atomic.Pointer[auth.Authenticator]
	systemd  atomic.Pointer[restart.LazyConn]
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
	return authStatus(a.State())
}

// authStatus maps auth's state onto the status output's.
func authStatus(s auth.State) status.Auth {
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

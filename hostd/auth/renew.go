package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/vaulterr"
)

// The renewal schedule, as fractions of a token's lease (its TTL when it was
// granted or last renewed). The token is renewed once renewAt of its lease
// has passed. A failed renewal is retried with backoff; a new login happens
// only once reloginAt of the lease has passed, so a Vault outage shorter
// than the rest of the token's life costs no login (nor a use of a
// secret-id with secret_id_num_uses). Both points move earlier by a random
// part of scheduleJitter, so hosts that logged in together drift apart.
const (
	renewAt        = 2.0 / 3
	reloginAt      = 0.9
	scheduleJitter = 0.05
)

// lease is where a held token is in its life.
type lease struct {
	renewable bool
	granted   time.Time     // of the current TTL: the login or the last renewal
	ttl       time.Duration // the current TTL
	renewAt   time.Time
	// grace is how long before its expiry the token is replaced by a new
	// login: a fixed share of the TTL the token was born with, so a TTL cut
	// short by the max TTL does not shrink it.
	grace time.Duration
}

func newLease(now time.Time, auth *api.SecretAuth, random func() float64) *lease {
	ttl := time.Duration(auth.LeaseDuration) * time.Second
	l := &lease{
		renewable: auth.Renewable,
		grace:     time.Duration(float64(ttl) * (1 - reloginAt + scheduleJitter*random())),
	}
	l.extend(now, ttl, random)
	return l
}

func (l *lease) expiry() time.Time { return l.granted.Add(l.ttl) }

// extend records a TTL granted at now. A TTL shorter than the one before
// means the token reached its max TTL: renewing it again is pointless, it is
// held until the re-login point.
func (l *lease) extend(now time.Time, ttl time.Duration, random func() float64) {
	if l.ttl > 0 && ttl < l.ttl {
		l.renewable = false
	}
	l.granted, l.ttl = now, ttl
	l.renewAt = now.Add(time.Duration(float64(ttl) * (renewAt - scheduleJitter*random())))
}

// next says when to act and whether that is a new login (true) or a renewal
// (false); retryIn is the backoff after failures consecutive failed renewals.
func (l *lease) next(now time.Time, failures int, retryIn func(int) time.Duration) (time.Time, bool) {
	relogin := l.expiry().Add(-l.grace)
	if !l.renewable {
		return relogin, true
	}
	at := l.renewAt
	if failures > 0 {
		at = now.Add(retryIn(failures))
	}
	if !at.Before(relogin) {
		return relogin, true
	}
	return at, false
}

// keepAlive renews the token until it nears its expiry (renewals failing
// meanwhile are retried), Vault rejects it, or ctx is done. It reports whether
// at least one renewal succeeded.
func (a *Authenticator) keepAlive(ctx context.Context, secret *api.Secret) (renewed bool) {
	token := secret.Auth.ClientToken
	if secret.Auth.LeaseDuration <= 0 {
		// A token that never expires (a root or periodic-less token from a
		// token file): hold it until Vault rejects it.
		a.holdUntilRejected(ctx, token, nil)
		return false
	}
	client, err := a.client.CloneWithHeaders()
	if err != nil {
		a.recordError("renew: " + err.Error())
		return false
	}
	client.SetToken(token)
	l := newLease(a.opts.Now(), secret.Auth, a.opts.Rand)
	failures := 0
	for {
		at, relogin := l.next(a.opts.Now(), failures, a.retryIn)
		timer := time.NewTimer(at.Sub(a.opts.Now()))
		held := a.holdUntilRejected(ctx, token, timer.C)
		timer.Stop()
		if !held {
			return renewed
		}
		if relogin {
			a.opts.Logger.Info("vault token near its expiry; logging in again", "method", a.opts.Method, "renewed", renewed)
			return renewed
		}
		out, err := client.Auth().Token().RenewSelfWithContext(ctx, 0)
		if err == nil && (out == nil || out.Auth == nil) {
			err = errors.New("vault answered the renewal without a token lease")
		}
		switch {
		case ctx.Err() != nil:
			return renewed
		case err == nil:
			renewed, failures = true, 0
			l.extend(a.opts.Now(), time.Duration(out.Auth.LeaseDuration)*time.Second, a.opts.Rand)
			l.renewable = l.renewable && out.Auth.Renewable
			a.recordRenewal(out)
		case vaulterr.IsInvalidToken(err):
			a.dropRejected()
			return renewed
		case isPastMaxTTL(err):
			l.renewable = false
			a.opts.Logger.Info("vault token at its max TTL; logging in again near its expiry", "method", a.opts.Method)
		default:
			if isForbidden(err) {
				l.renewable = false // the policy does not allow renewing: use the token while it lasts
			}
			failures++
			a.recordRenewalFailure(vaulterr.Describe(err), failures, l.expiry().Add(-l.grace))
		}
	}
}

// holdUntilRejected waits until expired fires (true), or Vault rejects token
// or ctx is done (false). A nil expired waits without end.
func (a *Authenticator) holdUntilRejected(ctx context.Context, token string, expired <-chan time.Time) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case <-expired:
			return true
		case tok := <-a.rejected:
			if tok == token {
				a.dropRejected()
				return false
			}
		}
	}
}

// isPastMaxTTL reports Vault's answer to renewing a token at its max TTL: the
// normal end of a token's life, not a failure.
func isPastMaxTTL(err error) bool {
	return strings.Contains(err.Error(), "past the max TTL")
}

// isForbidden reports a 403 answer: the token may not be renewed, or it is
// no longer valid (see vaulterr.IsInvalidToken).
func isForbidden(err error) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}

func (a *Authenticator) recordRenewal(out *api.Secret) {
	now := a.opts.Now()
	expiry := expiryOf(now, out.Auth.LeaseDuration)
	a.mu.Lock()
	a.state.LastRenewal = now
	a.state.TokenExpiry, a.state.Renewable = expiry, out.Auth.Renewable
	a.mu.Unlock()
	a.opts.Logger.Debug("renewed vault token", "method", a.opts.Method, "expires", expiry)
	a.opts.Sink.Publish(event.Auth{Time: now, Method: a.opts.Method, Renewal: true, OK: true, TokenExpiry: expiry, Renewable: out.Auth.Renewable})
}

func (a *Authenticator) recordRenewalFailure(msg string, failures int, relogin time.Time) {
	a.recordError("renew: " + msg)
	a.opts.Logger.Warn("vault token renewal failed; retrying until the token nears its expiry", "method", a.opts.Method,
		"err", msg, "consecutive_failures", failures, "login_again_in", relogin.Sub(a.opts.Now()).Round(time.Second))
	a.opts.Sink.Publish(event.Auth{Time: a.opts.Now(), Method: a.opts.Method, Renewal: true, Err: msg})
}

// dropRejected forgets a token Vault called invalid, so nobody keeps using it,
// and reports it.
func (a *Authenticator) dropRejected() {
	const msg = "vault rejected the token as invalid (revoked or expired)"
	empty := ""
	a.token.Store(&empty)
	a.recordError(msg)
	a.opts.Logger.Warn(msg+"; logging in again", "method", a.opts.Method)
	a.opts.Sink.Publish(event.Auth{Time: a.opts.Now(), Method: a.opts.Method, Renewal: true, Rejected: true, Err: msg})
}

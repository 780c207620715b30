package auth

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/vaulttest"
)

func isFailedRenewal(e event.Auth) bool { return e.Renewal && !e.OK }

func isLoginAttempt(e event.Auth) bool { return !e.Renewal }

// A network outage shorter than the token's remaining life: the renewals
// that fail are retried and the token is kept. No login happens, so a
// secret-id that allows one use is not spent.
func TestRenewalFailuresAreRetriedWithoutALogin(t *testing.T) {
	h := newAppRoleHarness(t, map[string]any{"token_ttl": "12s", "token_max_ttl": "10m", "secret_id_num_uses": 1})
	front, a := h.startBehindFrontEnd(t)
	token := h.seeToken(t)
	login, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))

	front.SetDown(true)
	_, next = h.events.WaitFor(t, next, 12*time.Second, "failed renewal", isFailedRenewal)
	_, next = h.events.WaitFor(t, next, 3*time.Second, "second failed renewal", isFailedRenewal)
	front.SetDown(false)
	renewal, _ := h.events.WaitFor(t, next, 5*time.Second, "renewal once the network is back", isRenewal)

	if a.Token() != token {
		t.Fatal("the token changed: hostd logged in again instead of renewing")
	}
	for _, e := range h.events.All() {
		if isLoginAttempt(e) && e.Time.After(login.Time) {
			t.Fatalf("a login was attempted during a renewal outage: %+v", e)
		}
	}
	if err := tokenWorks(t, h.vault, token); err != nil {
		t.Fatalf("the kept token does not work: %v", err)
	}
	if !renewal.TokenExpiry.After(login.TokenExpiry) {
		t.Fatalf("renewal expiry %s not after the login's %s", renewal.TokenExpiry, login.TokenExpiry)
	}
	if st := a.State(); !st.Authenticated || st.LastRenewal.IsZero() {
		t.Fatalf("state %+v, want authenticated and renewed", st)
	}
}

// A network outage that outlasts the token: renewals are retried until the
// token nears its expiry, and only then does hostd log in again.
func TestRenewalFailuresLogInAgainOnlyNearExpiry(t *testing.T) {
	const ttl = 6 * time.Second
	h := newAppRoleHarness(t, map[string]any{"token_ttl": ttl.String(), "token_max_ttl": "10m"})
	front, _ := h.startBehindFrontEnd(t)
	first := h.seeToken(t)
	login, next := h.events.WaitFor(t, 0, time.Second, "login", isLogin(true))

	front.SetDown(true)
	failedRenewal, next := h.events.WaitFor(t, next, 10*time.Second, "failed renewal", isFailedRenewal)
	relogin, next := h.events.WaitFor(t, next, 10*time.Second, "login attempt near expiry", isLoginAttempt)
	earliest := login.Time.Add(time.Duration(float64(ttl) * (reloginAt - scheduleJitter)))
	if relogin.Time.Before(earliest) {
		t.Fatalf("login attempted %s after the login, before the re-login point %s (first failed renewal after %s)",
			relogin.Time.Sub(login.Time), earliest.Sub(login.Time), failedRenewal.Time.Sub(login.Time))
	}
	front.SetDown(false)
	h.waitNewLogin(t, next, 5*time.Second, "login once the network is back", first)
}

func TestLeaseSchedule(t *testing.T) {
	t0 := time.Unix(1000, 0)
	retry := func(failures int) time.Duration { return time.Duration(failures) * time.Second }
	mid := func() float64 { return 0.5 }
	l := newLease(t0, &api.SecretAuth{LeaseDuration: 60, Renewable: true}, mid)

	// Renew at 2/3 of the TTL, less half the 5 % jitter: 38.5s.
	if at, relogin := l.next(t0, 0, retry); relogin || at != t0.Add(38500*time.Millisecond) {
		t.Fatalf("first action %s relogin=%v, want a renewal after 38.5s", at.Sub(t0), relogin)
	}
	// A failed renewal is retried after the backoff...
	now := t0.Add(40 * time.Second)
	if at, relogin := l.next(now, 2, retry); relogin || at != now.Add(2*time.Second) {
		t.Fatalf("retry %s relogin=%v, want a renewal 2s later", at.Sub(now), relogin)
	}
	// ...but never past the re-login point: 90 % of the TTL less half the
	// jitter, 52.5s.
	now = t0.Add(51 * time.Second)
	if at, relogin := l.next(now, 5, retry); !relogin || at != t0.Add(52500*time.Millisecond) {
		t.Fatalf("action %s relogin=%v, want a login at 52.5s", at.Sub(t0), relogin)
	}
	// A renewal that gives a shorter TTL (the max TTL caps it) ends
	// renewing: the token is held until the re-login point.
	l.extend(now, 20*time.Second, mid)
	if at, relogin := l.next(now, 0, retry); !relogin || at != now.Add(20*time.Second-l.grace) {
		t.Fatalf("after a capped renewal: %s relogin=%v, want a login %s before the new expiry", at.Sub(now), relogin, l.grace)
	}
	// A token that cannot be renewed is held until the re-login point.
	l = newLease(t0, &api.SecretAuth{LeaseDuration: 60}, mid)
	if at, relogin := l.next(t0, 0, retry); !relogin || at != t0.Add(52500*time.Millisecond) {
		t.Fatalf("non-renewable: %s relogin=%v, want a login at 52.5s", at.Sub(t0), relogin)
	}
}

// startBehindFrontEnd runs an approle Authenticator that reaches Vault
// through a front end the test can take down, and waits for its first
// login.
func (h *harness) startBehindFrontEnd(t *testing.T) (*vaulttest.FrontEnd, *Authenticator) {
	t.Helper()
	front := vaulttest.NewFrontEnd(t, h.vault.Addr)
	opts := h.options(MethodAppRole)
	opts.Client = vaulttest.ClientFor(t, front.URL, nil)
	a := h.start(t, opts)
	waitReady(t, a, 10*time.Second)
	return front, a
}

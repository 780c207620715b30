// Package auth owns hostd's Vault token: it logs in (approle, cert, jwt or
// token_file), renews the token itself, retries a failed renewal with
// jittered backoff until the token nears its expiry, and only then logs in
// again (also when the token reaches its max TTL or Vault rejects it), backing
// off (capped, jittered) between failed logins. Every credential file is read
// again at each login: a rotated secret-id, a renewed short-lived client
// certificate or a new JWT is used without a restart. A response-wrapped
// secret-id is unwrapped first, and with remove_secret_id_file_after_reading
// the secret-id file is deleted once read (secretid.go): the one file this
// package changes.
//
// It publishes an event.Auth for every login and renewal attempt and hands the
// current token out through Token(). It never writes the token anywhere: not
// to a file, a log line, an event or an error. It knows nothing of templates,
// files or systemd.
package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/vaulterr"
)

// Login methods.
const (
	MethodAppRole   = "approle"
	MethodCert      = "cert"
	MethodJWT       = "jwt"
	MethodTokenFile = "token_file"
)

// minTokenLife: a token that stops being usable sooner than this after the
// login counts as a failure for backoff, so a token that is born expiring (or
// rejected) cannot drive a tight login loop.
const minTokenLife = time.Second

// Options configures an Authenticator.
type Options struct {
	// Client talks to Vault; the caller configures address, TLS and
	// namespace. The Authenticator works on its own copy and never changes
	// this one.
	Client *api.Client
	// Method is MethodAppRole, MethodCert, MethodJWT or MethodTokenFile.
	Method string
	// MountPath is where the auth method is mounted ("auth/approle" or
	// "approle"); the default is DefaultMountPath(Method).
	MountPath string

	RoleIDFile, SecretIDFile string // approle: read at every login
	// RemoveSecretIDFileAfterReading deletes the secret-id file once read;
	// later logins reuse the secret-id read last if the file is gone.
	RemoveSecretIDFileAfterReading bool
	// SecretIDResponseWrappingPath, when set, says the secret-id file holds
	// a response-wrapping token (delivered by a trusted orchestrator) that
	// must have been created at this path, such as
	// "auth/approle/role/waf/secret-id". The secret-id is unwrapped at the
	// login that first reads the token and kept in memory for later logins.
	SecretIDResponseWrappingPath string

	CertName string // cert: the certificate role name; optional
	// TLS names the files of the cert method's TLS settings: the client
	// certificate and key (required) and the CA. They are read again at
	// every login, on a connection of the login's own, so a renewed
	// short-lived certificate or a new CA takes effect without a restart.
	TLS *api.TLSConfig

	Role    string // jwt: the role to log in with
	JWTFile string // jwt: the file holding the JWT; read at every login

	TokenFile string // token_file: read at every login

	// MinBackoff and MaxBackoff bound the wait between failed attempts
	// (defaults backoff.DefaultBase, backoff.DefaultCeiling).
	MinBackoff, MaxBackoff time.Duration

	stage.Reporting // its Sink receives event.Auth
	stage.Clock
}

// State is a snapshot of the Authenticator for status output.
type State struct {
	Method string
	// Authenticated is true while a token is held that has not expired and
	// that Vault has not rejected.
	Authenticated bool
	TokenExpiry   time.Time // zero when no token is held or it never expires
	Renewable     bool
	LastLogin     time.Time
	LastRenewal   time.Time
	LastError     string
	LastErrorTime time.Time
	// ConsecutiveFailures counts failed logins since the last success.
	ConsecutiveFailures int
}

// Authenticator holds hostd's Vault token. Create it with New, start Run in
// a goroutine, and read Token() from anywhere.
type Authenticator struct {
	opts   Options
	client *api.Client
	login  func(context.Context) (*api.Secret, error)

	token    atomic.Pointer[string]
	ready    chan struct{}
	rejected chan string

	mu    sync.Mutex
	state State

	secretIDMu   sync.Mutex // held while a login reads (and maybe unwraps) the secret-id
	lastSecretID string     // approle: the secret-id read or unwrapped last
	lastWrapping string     // approle: the wrapping token lastSecretID came from
}

// Format prints the Authenticator as its login method alone, for every fmt
// verb: formatted by mistake into a log line or an error, it must not show
// the token, the secret-id or the wrapping token it holds.
func (a *Authenticator) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "auth.Authenticator{method=%s}", a.opts.Method)
}

// New checks opts and returns an Authenticator that has not logged in yet.
func New(opts Options) (*Authenticator, error) {
	if opts.Client == nil {
		return nil, errors.New("auth: a Vault client is required")
	}
	client, err := opts.Client.CloneWithHeaders() // keeps the namespace header
	if err != nil {
		return nil, fmt.Errorf("auth: copy Vault client: %w", err)
	}
	client.ClearToken() // never send a token picked up from the environment
	opts = withDefaults(opts)

	a := &Authenticator{
		opts:     opts,
		client:   client,
		ready:    make(chan struct{}),
		rejected: make(chan string, 1),
		state:    State{Method: opts.Method},
	}
	if a.login, err = a.loginFunc(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return a, nil
}

func withDefaults(o Options) Options {
	o.MinBackoff, o.MaxBackoff = backoff.Bounds(o.MinBackoff, o.MaxBackoff)
	o.Reporting = o.Reporting.WithDefaults()
	o.Clock = o.Clock.WithDefaults()
	if o.MountPath == "" {
		o.MountPath = DefaultMountPath(o.Method)
	}
	o.MountPath = "auth/" + strings.TrimPrefix(strings.Trim(o.MountPath, "/"), "auth/")
	return o
}

// DefaultMountPath is where a login method is mounted unless the
// configuration says otherwise: auth/<method>.
func DefaultMountPath(method string) string { return "auth/" + method }

// Token returns the current token, or "" before the first login and after
// Vault rejected the token until the next login succeeds.
func (a *Authenticator) Token() string {
	if p := a.token.Load(); p != nil {
		return *p
	}
	return ""
}

// Ready is closed after the first successful login.
func (a *Authenticator) Ready() <-chan struct{} { return a.ready }

// State returns a snapshot for status output.
func (a *Authenticator) State() State {
	a.mu.Lock()
	s := a.state
	a.mu.Unlock()
	s.Authenticated = a.Token() != "" && (s.TokenExpiry.IsZero() || a.opts.Now().Before(s.TokenExpiry))
	return s
}

// TokenRejected tells the Authenticator that Vault answered a request made
// with token as an invalid token (for example: it was revoked). If token is
// still the current one, Run logs in again without waiting for the token's
// expiry. It never blocks.
func (a *Authenticator) TokenRejected(token string) {
	if token == "" || token != a.Token() {
		return
	}
	select {
	case a.rejected <- token:
	default:
	}
}

// Run logs in, keeps the token alive and logs in again whenever needed,
// until ctx is done. It returns ctx's error.
func (a *Authenticator) Run(ctx context.Context) error {
	failures := 0 // consecutive failed logins and tokens that ended early
	for {
		if failures > 0 {
			if err := backoff.Sleep(ctx, a.retryIn(failures)); err != nil {
				return err
			}
		}
		secret, err := a.attemptLogin(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			failures++
			continue
		}
		obtained := a.opts.Now()
		renewed := a.keepAlive(ctx, secret)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if renewed || a.opts.Now().Sub(obtained) >= minTokenLife {
			failures = 0
		} else {
			failures++
		}
	}
}

// attemptLogin logs in once, publishes the outcome and on success makes the
// new token current.
func (a *Authenticator) attemptLogin(ctx context.Context) (*api.Secret, error) {
	secret, err := a.login(ctx)
	if err == nil && (secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "") {
		err = errors.New("vault answered the login without a token")
	}
	now := a.opts.Now()
	if err != nil {
		msg := vaulterr.Describe(err)
		a.mu.Lock()
		a.state.ConsecutiveFailures++
		a.state.LastError, a.state.LastErrorTime = "login: "+msg, now
		n := a.state.ConsecutiveFailures
		a.mu.Unlock()
		if ctx.Err() == nil {
			a.opts.Logger.Warn("vault login failed", "method", a.opts.Method, "err", msg, "consecutive_failures", n)
			a.opts.Sink.Publish(event.Auth{Time: now, Method: a.opts.Method, Err: msg})
		}
		return nil, err
	}

	expiry := expiryOf(now, secret.Auth.LeaseDuration)
	a.token.Store(&secret.Auth.ClientToken)
	a.mu.Lock()
	a.state.ConsecutiveFailures = 0
	a.state.LastLogin = now
	a.state.TokenExpiry, a.state.Renewable = expiry, secret.Auth.Renewable
	a.mu.Unlock()
	select {
	case <-a.ready:
	default:
		close(a.ready)
	}
	a.opts.Logger.Info("logged in to vault", "method", a.opts.Method,
		"ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second, "renewable", secret.Auth.Renewable)
	a.opts.Sink.Publish(event.Auth{Time: now, Method: a.opts.Method, OK: true, TokenExpiry: expiry, Renewable: secret.Auth.Renewable})
	return secret, nil
}

func (a *Authenticator) recordError(msg string) {
	a.mu.Lock()
	a.state.LastError, a.state.LastErrorTime = msg, a.opts.Now()
	a.mu.Unlock()
}

// retryIn is the wait after failures consecutive failures.
func (a *Authenticator) retryIn(failures int) time.Duration {
	return backoff.Delay(failures, a.opts.MinBackoff, a.opts.MaxBackoff, a.opts.Rand)
}

func expiryOf(now time.Time, leaseSeconds int) time.Time {
	if leaseSeconds <= 0 {
		return time.Time{}
	}
	return now.Add(time.Duration(leaseSeconds) * time.Second)
}

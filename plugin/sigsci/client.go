// Package sigsci is the client of the Signal Sciences (Fastly Next-Gen WAF)
// v0 API for agent keys and sites. It owns the HTTP exchange with the API:
// authentication headers, per-attempt timeouts, bounded retries with backoff
// and Retry-After, pagination, and the upstream JSON shapes (kept in
// internal/wire). It must not touch Vault storage or decide policy such as
// which key set to retire: callers (the secrets engine) do that.
//
// The API token never appears in an error, a log line or fmt output, and an
// error carries only the API's JSON "message", never a raw answer body.
//
// Retry policy. GET and DELETE are retried on rate limiting, on 5xx (except
// 501) and on connection errors and per-attempt timeouts. Rate limiting is a
// 429, or a 400 whose message contains "Rate limit exceeded" (as the v0 API
// also signals it); a Retry-After is honoured when present, else the client
// backs off. POST (CreateKeySet) creates a key set, so repeating it after the
// request may have reached the server could create a second set: POST is
// retried only on rate limiting (the server refused it) and on errors raised
// before any connection was obtained (dial, DNS, TLS setup), when the request
// certainly was not sent. Every other CreateKeySet failure in
// which the set may exist wraps ErrOutcomeUnknown; the caller reconciles with
// ListKeySets.
package sigsci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/internal/wire"
)

// DefaultBaseURL is the public API root.
const DefaultBaseURL = "https://dashboard.signalsciences.net/api/v0"

// Defaults applied by New to zero Config fields.
const (
	DefaultTimeout       = 10 * time.Second
	DefaultMaxRetries    = 4
	DefaultMinBackoff    = 250 * time.Millisecond
	DefaultMaxBackoff    = 10 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
)

const (
	userAgent    = "sigsci-keys"
	maxBodyBytes = 8 << 20
)

// Config configures a Client. Zero values take the defaults above.
type Config struct {
	BaseURL    string        // default DefaultBaseURL; an absolute https:// URL (http:// only for a loopback host)
	Email      string        // sent as x-api-user
	Token      string        // sent as x-api-token; never logged, never in errors
	HTTPClient *http.Client  // optional; redirects are never followed whatever it says
	Timeout    time.Duration // per attempt, default 10s
	// MaxRetries bounds the retries after the first attempt: 0 means
	// DefaultMaxRetries, a negative value means no retries at all.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff (with jitter)
	// between attempts: default 250ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After the client waits for (default
	// 60s). A longer one ends the retries and the 429/503 is returned.
	MaxRetryAfter time.Duration
	// Logger receives warnings about answers that depart from the expected
	// shape (never a secret); default: discarded.
	Logger Logger
}

// Logger is where the client reports answers of an unexpected shape, with
// key/value pairs; an hclog.Logger is one.
type Logger interface {
	Warn(msg string, args ...interface{})
}

// discardLogger is the Logger of a client configured without one.
type discardLogger struct{}

func (discardLogger) Warn(string, ...interface{}) {}

// Client calls the API. It is safe for concurrent use.
type Client struct {
	baseURL       string // scheme://host/path without trailing slash
	email         string
	token         string
	httpClient    *http.Client
	timeout       time.Duration
	maxRetries    int
	minBackoff    time.Duration
	maxBackoff    time.Duration
	maxRetryAfter time.Duration
	logger        Logger

	// now and sleep are replaced in tests so that waits are observed, not slept.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	base, err := checkBaseURL(cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if err := checkCredentials(cfg.Email, cfg.Token); err != nil {
		return nil, err
	}
	if err := checkDurations(cfg); err != nil {
		return nil, err
	}
	c := &Client{
		baseURL:       base,
		email:         cfg.Email,
		token:         cfg.Token,
		httpClient:    noRedirects(cfg.HTTPClient),
		timeout:       orDefault(cfg.Timeout, DefaultTimeout),
		maxRetries:    cfg.MaxRetries,
		minBackoff:    orDefault(cfg.MinBackoff, DefaultMinBackoff),
		maxBackoff:    orDefault(cfg.MaxBackoff, DefaultMaxBackoff),
		maxRetryAfter: orDefault(cfg.MaxRetryAfter, DefaultMaxRetryAfter),
		logger:        cfg.Logger,
		now:           time.Now,
		sleep:         sleepContext,
	}
	switch {
	case cfg.MaxRetries == 0:
		c.maxRetries = DefaultMaxRetries
	case cfg.MaxRetries < 0:
		c.maxRetries = 0
	}
	if c.logger == nil {
		c.logger = discardLogger{}
	}
	if c.minBackoff > c.maxBackoff {
		return nil, fmt.Errorf("sigsci: MinBackoff (%s) is larger than MaxBackoff (%s)", c.minBackoff, c.maxBackoff)
	}
	return c, nil
}

func checkBaseURL(raw string) (string, error) {
	if raw == "" {
		raw = DefaultBaseURL
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("sigsci: API base URL is not a URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("sigsci: API base URL %q must start with https:// (or http://)", u.Redacted())
	}
	if u.Host == "" {
		return "", fmt.Errorf("sigsci: API base URL %q has no host", u.Redacted())
	}
	if u.Scheme == "http" && !LoopbackHost(u.Hostname()) {
		return "", fmt.Errorf("sigsci: API base URL %q must use https:// (http:// only for a loopback host)", u.Redacted())
	}
	if u.User != nil {
		return "", errors.New("sigsci: API base URL must not carry user:password; set Email and Token instead")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("sigsci: API base URL %q must not have a query or fragment", u.Redacted())
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// LoopbackHost reports whether host (no port, no brackets) is a loopback
// address, 127.0.0.0/8 or ::1, or the name localhost: the only hosts the
// client talks to over plain http://, as local simulators are.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkCredentials(email, token string) error {
	if strings.TrimSpace(email) == "" {
		return errors.New("sigsci: API user email is empty")
	}
	if token == "" {
		return errors.New("sigsci: API token is empty")
	}
	if strings.ContainsAny(email, "\r\n\x00") {
		return errors.New("sigsci: API user email contains a line break or NUL")
	}
	if strings.ContainsAny(token, "\r\n\x00") || strings.TrimSpace(token) != token {
		return errors.New("sigsci: API token contains whitespace, a line break or NUL at its ends (check the token file)")
	}
	return nil
}

func checkDurations(cfg Config) error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Timeout", cfg.Timeout},
		{"MinBackoff", cfg.MinBackoff},
		{"MaxBackoff", cfg.MaxBackoff},
		{"MaxRetryAfter", cfg.MaxRetryAfter},
	} {
		if d.v < 0 {
			return fmt.Errorf("sigsci: %s must not be negative (got %s)", d.name, d.v)
		}
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// noRedirects returns a copy of hc (or a fresh client) that never follows a
// redirect: the Go client forwards custom headers such as x-api-token to the
// redirect target, which may be another host.
func noRedirects(hc *http.Client) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// attempt is the result of one HTTP exchange.
type attempt struct {
	status int
	header http.Header
	body   []byte
	err    error // transport error (status 0) or body read error
	// connected is false when no connection was obtained: the request was
	// certainly not sent.
	connected bool
}

// send makes one attempt under its own timeout.
func (c *Client) send(ctx context.Context, method, rawURL string) attempt {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var connected atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) { connected.Store(true) },
	})
	req, err := http.NewRequestWithContext(ctx, method, rawURL, nil)
	if err != nil {
		return attempt{err: err}
	}
	req.Header.Set(wire.HeaderUser, c.email)
	req.Header.Set(wire.HeaderToken, c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return attempt{err: unwrapURLError(err), connected: connected.Load()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	return attempt{status: resp.StatusCode, header: resp.Header, body: body, err: err, connected: true}
}

// unwrapURLError drops *url.Error's "Get \"https://...\":" prefix: the method
// and path are added by the caller, and the host adds nothing to the story.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// verdict is what do makes of one attempt.
type verdict struct {
	err        error         // nil: success
	retry      bool          // worth another attempt
	retryAfter time.Duration // from the Retry-After header, if any
	hasAfter   bool
}

// do runs method on the API path (already escaped) with retries, and returns
// the status and body of a 2xx answer.
func (c *Client) do(ctx context.Context, method, path string, query url.Values) (int, []byte, error) {
	rawURL := c.baseURL + path
	if len(query) > 0 {
		rawURL += "?" + query.Encode()
	}
	for n := 0; ; n++ {
		a := c.send(ctx, method, rawURL)
		if ctx.Err() != nil && (a.status == 0 || a.err != nil) {
			return 0, nil, c.canceled(ctx, method, path, a)
		}
		v := c.judge(method, path, a)
		if v.err == nil {
			return a.status, a.body, nil
		}
		if !v.retry {
			return 0, nil, v.err
		}
		if n >= c.maxRetries {
			return 0, nil, fmt.Errorf("%w (gave up after %d attempts)", v.err, n+1)
		}
		wait := c.backoff(n)
		if v.hasAfter {
			if v.retryAfter > c.maxRetryAfter {
				return 0, nil, fmt.Errorf("%w (server asks to retry after %s, longer than the %s allowed)", v.err, v.retryAfter, c.maxRetryAfter)
			}
			wait = v.retryAfter
		}
		if deadline, ok := ctx.Deadline(); ok && c.now().Add(wait).After(deadline) {
			return 0, nil, fmt.Errorf("%w (no time left for a retry in %s before the deadline)", v.err, wait.Round(time.Millisecond))
		}
		if err := c.sleep(ctx, wait); err != nil {
			return 0, nil, fmt.Errorf("sigsci: %s %s: %w while waiting to retry after: %w", method, path, err, v.err)
		}
	}
}

// canceled builds the error for an attempt cut short by the caller's context.
func (c *Client) canceled(ctx context.Context, method, path string, a attempt) error {
	err := fmt.Errorf("sigsci: %s %s: %w", method, path, context.Cause(ctx))
	if method == http.MethodPost && a.connected {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return err
}

// judge classifies one attempt: success, final error, or retry.
func (c *Client) judge(method, path string, a attempt) verdict {
	post := method == http.MethodPost
	if a.status == 0 {
		err := fmt.Errorf("sigsci: %s %s: %w", method, path, a.err)
		if errors.Is(a.err, context.DeadlineExceeded) {
			err = fmt.Errorf("sigsci: %s %s: no answer within %s: %w", method, path, c.timeout, a.err)
		}
		if post && a.connected {
			return verdict{err: fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)}
		}
		return verdict{err: err, retry: true}
	}
	if a.status >= 200 && a.status < 300 {
		if a.err != nil && !post {
			return verdict{err: fmt.Errorf("sigsci: %s %s: reading the answer: %w", method, path, a.err), retry: true}
		}
		// A POST whose answer could not be read still succeeded: the caller
		// sees an empty body and lists the sets.
		return verdict{}
	}
	apiErr := c.apiError(method, path, a)
	v := verdict{err: apiErr}
	v.retryAfter, v.hasAfter = parseRetryAfter(a.header.Get("Retry-After"), c.now())
	switch {
	case apiErr.RateLimited:
		v.retry = true
	case a.status >= 500 && a.status != http.StatusNotImplemented:
		if post {
			v.err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, apiErr)
		} else {
			v.retry = true
		}
	}
	return v
}

// apiError builds the error of a non-2xx answer from the API's {"message"}
// only. The token is scrubbed in case a proxy echoes the request.
func (c *Client) apiError(method, path string, a attempt) *APIError {
	e := &APIError{Method: method, Path: path, StatusCode: a.status}
	e.Message, e.Detail = decodeErrorMessage(a.body, a.header.Get("Content-Type"))
	if c.token != "" {
		e.Message = strings.ReplaceAll(e.Message, c.token, redactedMark)
	}
	e.RateLimited = a.status == http.StatusTooManyRequests || a.status == http.StatusBadRequest && IsRateLimitMessage(e.Message)
	return e
}

// backoff is the wait before retry n+1: exponential from minBackoff, capped
// at maxBackoff, with "equal jitter" (between half and all of the step).
func (c *Client) backoff(n int) time.Duration {
	step := c.maxBackoff
	if n < 30 {
		step = min(c.minBackoff<<n, c.maxBackoff)
	}
	if step <= 1 {
		return step
	}
	half := step / 2
	return half + rand.N(step-half+1)
}

// parseRetryAfter reads Retry-After as delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(365*24*time.Hour/time.Second) {
			secs = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second, true
	}
	when, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(when.Sub(now), 0), true
}

// Package vaultproxy owns the only path from consul-template to Vault: an
// in-process HTTP proxy reached through a dialer, with no socket and no token
// of consul-template's own.
//
// On every request it sets the token hostd's auth currently holds (so a new
// token takes effect without re-creating consul-template's runner) and the
// namespace; it shortens the ttl hint of rotating secrets to hostd's own
// jittered refresh interval; it tells the token's owner when Vault calls the
// token invalid; it gives up on a request Vault does not answer in time (a
// hung Vault is an error, not a silent wait); it delays answers saying Vault
// is unavailable by a random jitter, so a fleet does not retry in step; it
// reads the gzip answers of a compressing front end; it notes the access key
// id of every answer for a sigsci creds secret (creds.go); and it publishes
// an event.VaultRequest for each request. It never logs a header, a token or
// a response body. It knows nothing of templates or files.
package vaultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/backoff"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/stage"
	"github.com/sigsci-keys/sigsci-keys/hostd/internal/vaulterr"
)

// Address is the Vault address to give consul-template: its requests go to
// the proxy's dialer whatever the host, and the proxy speaks plain HTTP.
const Address = "http://hostd-vault-proxy"

// DefaultResponseTimeout bounds one request to Vault when Options leaves it
// zero. A healthy Vault answers a read (PKI issues included) far sooner; a
// stopped or hung one accepts the connection and never answers, and
// consul-template's own client would wait 60s per attempt before anyone
// heard of it. 15s makes such a Vault show as an error within one default
// refresh interval.
const DefaultResponseTimeout = 15 * time.Second

// TokenSource hands out the current Vault token ("" when there is none).
type TokenSource interface {
	Token() string
}

// TokenRejecter is told when Vault answers that a token is invalid (revoked
// or expired). A TokenSource may implement it to log in again at once.
type TokenRejecter interface {
	TokenRejected(token string)
}

// Options configures a Proxy.
type Options struct {
	// Upstream is the real Vault address, for example https://vault:8200.
	Upstream string
	// Transport carries hostd's TLS settings to Vault; nil means a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
	// Namespace is sent as X-Vault-Namespace when not empty; any namespace
	// header consul-template sets is replaced.
	Namespace string
	Tokens    TokenSource
	// ResponseTimeout bounds each request to Vault, from sending it to the
	// end of the answer; 0 means DefaultResponseTimeout. A request that
	// runs out is answered 504 and published as an error.
	ResponseTimeout time.Duration
	// RefreshInterval is hostd's re-read cadence for secrets without a
	// lease; 0 disables the rewrite.
	RefreshInterval time.Duration
	// FailureJitter bounds the random delay of an answer saying Vault is
	// unavailable (429, 5xx, unreachable, not logged in yet), so hosts do
	// not retry in step after an outage; 0 means DefaultFailureJitter, a
	// negative value turns the delay off.
	FailureJitter time.Duration
	stage.Reporting
	stage.Clock
}

// Proxy is an in-process reverse proxy to Vault. Its Dial and DialContext
// methods return connections served by the proxy itself; give the Proxy to
// consul-template as its Vault transport dialer.
type Proxy struct {
	opts     Options
	upstream *url.URL
	noAnswer error // the cause of a request that ran out of ResponseTimeout
	rp       *httputil.ReverseProxy
	server   *http.Server
	listener *pipeListener
	served   chan struct{}
	sleep    func(context.Context, time.Duration) error // waits out a failure delay
	keys     keyLog                                     // creds answers' access keys
}

// New starts a Proxy. Close stops it.
func New(opts Options) (*Proxy, error) {
	if opts.Tokens == nil {
		return nil, errors.New("vault proxy: a token source is required")
	}
	u, err := url.Parse(opts.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("vault proxy: vault address %q must be http(s)://host[:port]", opts.Upstream)
	}
	opts = withDefaults(opts)
	p := &Proxy{opts: opts, upstream: u, listener: newPipeListener(), served: make(chan struct{}), sleep: backoff.Sleep,
		noAnswer: fmt.Errorf("vault did not answer within %s", opts.ResponseTimeout)}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewriteRequest,
		Transport:      opts.Transport,
		ModifyResponse: p.inspectResponse,
		ErrorHandler:   p.upstreamFailed,
		ErrorLog:       slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	p.server = &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       90 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	go func() {
		defer close(p.served)
		p.server.Serve(p.listener)
	}()
	return p, nil
}

func withDefaults(o Options) Options {
	if o.Transport == nil {
		o.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	o.ResponseTimeout = stage.OrDefault(o.ResponseTimeout, DefaultResponseTimeout)
	if o.FailureJitter == 0 {
		o.FailureJitter = DefaultFailureJitter
	}
	o.Reporting = o.Reporting.WithDefaults()
	o.Clock = o.Clock.WithDefaults()
	return o
}

// Dial returns a new connection to the proxy; network and address are
// ignored.
func (p *Proxy) Dial(network, address string) (net.Conn, error) {
	return p.listener.dial(context.Background())
}

// DialContext is Dial with a context.
func (p *Proxy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return p.listener.dial(ctx)
}

// Close stops serving and closes every open connection.
func (p *Proxy) Close() error {
	err := p.server.Close()
	<-p.served
	return err
}

// ServeHTTP forwards one request to Vault with hostd's token.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w = &jitteredWriter{ResponseWriter: w, ctx: r.Context(), p: p}
	token := p.opts.Tokens.Token()
	if token == "" {
		p.publish(0, "not logged in to vault yet")
		writeVaultError(w, http.StatusServiceUnavailable, "hostd is not logged in to Vault yet")
		return
	}
	ctx, cancel := context.WithTimeoutCause(context.WithValue(r.Context(), tokenKey{}, token), p.opts.ResponseTimeout, p.noAnswer)
	defer cancel()
	p.rp.ServeHTTP(w, r.WithContext(ctx))
}

type tokenKey struct{}

// rewriteRequest points the request at Vault and sets token and namespace.
// Nothing consul-template sent as token or namespace survives.
func (p *Proxy) rewriteRequest(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	pr.Out.Header.Del("Authorization")
	pr.Out.Header.Del("X-Vault-Namespace")
	if p.opts.Namespace != "" {
		pr.Out.Header.Set("X-Vault-Namespace", p.opts.Namespace)
	}
	token, _ := pr.In.Context().Value(tokenKey{}).(string)
	pr.Out.Header.Set("X-Vault-Token", token)
	// The Transport asks for gzip by itself and then decompresses the
	// answer; with the client's Accept-Encoding passed on it would not, and
	// a front end that compresses JSON (nginx, Envoy) would hand the proxy
	// gzip bytes it cannot inspect.
	pr.Out.Header.Del("Accept-Encoding")
}

// inspectResponse publishes the outcome, reports a rejected token and
// rewrites the ttl hint of rotating secrets.
func (p *Proxy) inspectResponse(resp *http.Response) error {
	p.publish(resp.StatusCode, "")
	if err := decompress(resp); err != nil {
		return err
	}
	if err := p.noteCreds(resp); err != nil {
		return err
	}
	p.opts.Logger.Debug("vault request", "method", resp.Request.Method, "path", resp.Request.URL.Path, "status", resp.StatusCode)
	switch {
	case resp.StatusCode == http.StatusForbidden:
		return p.checkRejectedToken(resp)
	case resp.StatusCode == http.StatusOK && p.opts.RefreshInterval > 0 && isJSON(resp):
		return p.rewriteTTL(resp)
	}
	return nil
}

func (p *Proxy) checkRejectedToken(resp *http.Response) error {
	body, err := readBody(resp)
	if err != nil {
		return err
	}
	rejecter, ok := p.opts.Tokens.(TokenRejecter)
	if ok && bytes.Contains(body, []byte(vaulterr.InvalidTokenMessage)) {
		p.opts.Logger.Warn("vault rejected the token as invalid", "path", resp.Request.URL.Path)
		rejecter.TokenRejected(resp.Request.Header.Get("X-Vault-Token"))
	}
	return nil
}

// upstreamFailed answers when Vault could not be reached or did not answer
// in time.
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := http.StatusBadGateway, err.Error()
	switch {
	case errors.Is(context.Cause(r.Context()), p.noAnswer):
		code, msg = http.StatusGatewayTimeout, p.noAnswer.Error()
	case errors.Is(err, context.Canceled):
		msg = "request cancelled"
	}
	p.publish(0, msg)
	p.opts.Logger.Debug("vault request failed", "method", r.Method, "path", r.URL.Path, "err", msg)
	writeVaultError(w, code, "hostd could not reach Vault: "+msg)
}

func (p *Proxy) publish(code int, errText string) {
	p.opts.Sink.Publish(event.VaultRequest{Time: p.opts.Now(), StatusCode: code, Err: errText})
}

func writeVaultError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

package vaultproxy

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/event/eventtest"
	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
)

const (
	tokenA = "hvs.CAESIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	tokenB = "hvs.CAESIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
)

// tokens is a TokenSource and TokenRejecter for tests.
type tokens struct {
	current  atomic.Pointer[string]
	mu       sync.Mutex
	rejected []string
}

func newTokens(t string) *tokens {
	s := &tokens{}
	s.set(t)
	return s
}

func (s *tokens) set(t string)  { s.current.Store(&t) }
func (s *tokens) Token() string { return *s.current.Load() }
func (s *tokens) TokenRejected(t string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejected = append(s.rejected, t)
}

func (s *tokens) rejections() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

// seen is what the fake Vault received.
type seen struct {
	mu        sync.Mutex
	token, ns []string
	paths     []string
}

// fakeVault answers like Vault for a few paths and records what it received.
func fakeVault(t *testing.T, s *seen) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.token = append(s.token, r.Header.Get("X-Vault-Token"))
		s.ns = append(s.ns, r.Header.Get("X-Vault-Namespace"))
		s.paths = append(s.paths, r.URL.Path)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/sigsci/creds/long":
			io.WriteString(w, `{"lease_id":"","renewable":false,"lease_duration":0,"data":{"access_key":"ak","secret_key":"sk","rotation_period":86400,"ttl":3600}}`)
		case "/v1/sigsci/creds/short":
			io.WriteString(w, `{"lease_id":"","data":{"access_key":"ak","rotation_period":86400,"ttl":10}}`)
		case "/v1/sigsci/creds/string-ttl":
			io.WriteString(w, `{"lease_id":"","data":{"access_key":"ak","rotation_period":"24h","ttl":"3600"}}`)
		case "/v1/sigsci/creds/zero":
			io.WriteString(w, `{"lease_id":"","data":{"access_key":"ak","rotation_period":86400,"ttl":0}}`)
		case "/v1/sigsci/creds/leased":
			io.WriteString(w, `{"lease_id":"sigsci/creds/leased/abc","lease_duration":600,"data":{"access_key":"ak","rotation_period":86400,"ttl":3600}}`)
		case "/v1/kv1/static":
			io.WriteString(w, `{"lease_id":"","lease_duration":2764800,"data":{"accessKey":"ak"}}`)
		case "/v1/kv1/short":
			io.WriteString(w, `{"lease_id":"","lease_duration":10,"data":{"accessKey":"ak"}}`)
		case "/v1/secret/data/kv":
			io.WriteString(w, `{"lease_id":"","data":{"data":{"ttl":3600},"metadata":{"version":1}}}`)
		case "/v1/secret/revoked":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"errors":["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]}`)
		case "/v1/secret/denied":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[]}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

type setup struct {
	proxy  *Proxy
	client *http.Client
	tokens *tokens
	events *eventtest.Recorder[event.VaultRequest]
	logs   *logbuf.Buffer
	seen   *seen
	delays *delays
}

func newSetup(t *testing.T, upstream string, opts Options) *setup {
	s := &setup{tokens: newTokens(tokenA), events: eventtest.New[event.VaultRequest](), logs: &logbuf.Buffer{}, seen: &seen{}}
	if upstream == "" {
		upstream = fakeVault(t, s.seen).URL
	}
	opts.Upstream = upstream
	opts.Tokens = s.tokens
	opts.Sink = s.events
	opts.Logger = slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.proxy = p
	s.delays = &delays{}
	p.sleep = s.delays.record // failure delays are recorded, not waited out
	// The client dials the proxy the way consul-template does: through Dial.
	//lint:ignore SA1019 consul-template's Vault transport sets Dial, so the test does too
	s.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Dial: p.Dial}}
	t.Cleanup(func() {
		p.Close()
		if logs := s.logs.String(); strings.Contains(logs, tokenA) || strings.Contains(logs, tokenB) {
			t.Errorf("a token appeared in the proxy's logs:\n%s", logs)
		}
		if evs := fmt.Sprintf("%+v", s.events.All()); strings.Contains(evs, tokenA) || strings.Contains(evs, tokenB) {
			t.Errorf("a token appeared in an event: %s", evs)
		}
	})
	return s
}

func (s *setup) get(t *testing.T, path string, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, Address+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

func TestTokenAndNamespaceAreHostdsOwn(t *testing.T) {
	s := newSetup(t, "", Options{Namespace: "waf"})
	header := http.Header{
		"X-Vault-Token":     {"placeholder-from-consul-template"},
		"X-Vault-Namespace": {"from-environment"},
	}
	s.get(t, "/v1/secret/data/kv", header)
	s.tokens.set(tokenB) // auth logged in again: the next request uses the new token
	s.get(t, "/v1/secret/data/kv", header)

	s.seen.mu.Lock()
	defer s.seen.mu.Unlock()
	if want := []string{tokenA, tokenB}; fmt.Sprint(s.seen.token) != fmt.Sprint(want) {
		t.Fatal("Vault did not receive hostd's current token on each request")
	}
	if fmt.Sprint(s.seen.ns) != "[waf waf]" {
		t.Fatalf("Vault received namespaces %q, want waf each time", s.seen.ns)
	}
}

func TestNamespaceHeaderDroppedWhenNoneConfigured(t *testing.T) {
	s := newSetup(t, "", Options{})
	s.get(t, "/v1/secret/data/kv", http.Header{"X-Vault-Namespace": {"from-environment"}})
	s.seen.mu.Lock()
	defer s.seen.mu.Unlock()
	if s.seen.ns[0] != "" {
		t.Fatalf("Vault received namespace %q, want none", s.seen.ns[0])
	}
}

func TestInvalidTokenIsReportedToItsOwner(t *testing.T) {
	s := newSetup(t, "", Options{})
	code, body := s.get(t, "/v1/secret/denied", nil) // policy says no: the token is fine
	if code != http.StatusForbidden || !bytes.Contains(body, []byte("permission denied")) {
		t.Fatalf("status %d body %s, want Vault's 403 passed through", code, body)
	}
	if got := s.tokens.rejections(); len(got) != 0 {
		t.Fatal("a policy denial was reported as an invalid token")
	}
	s.get(t, "/v1/secret/revoked", nil)
	if got := s.tokens.rejections(); len(got) != 1 || got[0] != tokenA {
		t.Fatalf("got %d rejections, want exactly the token used for the request", len(got))
	}
}

func TestNoTokenYetAnswersLocally(t *testing.T) {
	s := newSetup(t, "", Options{})
	s.tokens.set("")
	code, body := s.get(t, "/v1/secret/data/kv", nil)
	if code != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("not logged in")) {
		t.Fatalf("status %d body %s, want 503 not logged in", code, body)
	}
	s.seen.mu.Lock()
	defer s.seen.mu.Unlock()
	if len(s.seen.paths) != 0 {
		t.Fatal("the request went to Vault without a token")
	}
}

func TestUnreachableVaultIsAnEventAndA502(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	addr := down.URL
	down.Close()
	s := newSetup(t, addr, Options{})

	code, body := s.get(t, "/v1/secret/data/kv", nil)
	if code != http.StatusBadGateway || !bytes.Contains(body, []byte("could not reach Vault")) {
		t.Fatalf("status %d body %s, want 502 with the reason", code, body)
	}
	evs := s.events.All()
	if len(evs) != 1 || evs[0].StatusCode != 0 || !strings.Contains(evs[0].Err, "connection refused") {
		t.Fatalf("events %+v, want one transport error", evs)
	}
}

func TestEveryRequestIsAnEvent(t *testing.T) {
	s := newSetup(t, "", Options{})
	s.get(t, "/v1/secret/data/kv", nil)
	s.get(t, "/v1/nothing", nil)
	s.get(t, "/v1/secret/denied", nil)
	var codes []int
	for _, e := range s.events.All() {
		codes = append(codes, e.StatusCode)
	}
	if fmt.Sprint(codes) != "[200 404 403]" {
		t.Fatalf("event codes %v, want [200 404 403]", codes)
	}
}

func TestDialAfterCloseFails(t *testing.T) {
	s := newSetup(t, "", Options{})
	s.proxy.Close()
	if _, err := s.proxy.Dial("tcp", "hostd-vault-proxy:80"); err == nil {
		t.Fatal("dial succeeded after Close")
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	for name, opts := range map[string]Options{
		"no tokens":     {Upstream: "https://vault:8200"},
		"no scheme":     {Upstream: "vault:8200", Tokens: newTokens("x")},
		"bad scheme":    {Upstream: "ftp://vault", Tokens: newTokens("x")},
		"empty address": {Tokens: newTokens("x")},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// A stopped or hung Vault: the kernel accepts connections on its port, and
// nothing ever answers.
func hungVault(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return "http://" + l.Addr().String()
}

func TestVaultThatDoesNotAnswerIsAnEventAndA504(t *testing.T) {
	s := newSetup(t, hungVault(t), Options{ResponseTimeout: 200 * time.Millisecond})

	start := time.Now()
	code, body := s.get(t, "/v1/sigsci/creds/long", nil)
	if code != http.StatusGatewayTimeout || !bytes.Contains(body, []byte("did not answer within 200ms")) {
		t.Fatalf("status %d body %s, want 504 saying Vault did not answer", code, body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the proxy answered after %s, want about its 200ms response timeout", took)
	}
	evs := s.events.All()
	if len(evs) != 1 || evs[0].StatusCode != 0 || evs[0].Err != "vault did not answer within 200ms" {
		t.Fatalf("events %+v, want one saying Vault did not answer", evs)
	}
}

func TestResponseTimeoutDefault(t *testing.T) {
	if got := withDefaults(Options{}).ResponseTimeout; got != DefaultResponseTimeout {
		t.Fatalf("default response timeout %s, want %s", got, DefaultResponseTimeout)
	}
	// Shorter than consul-template's own 60s client timeout, or the proxy
	// would never be the one to report a hung Vault.
	if DefaultResponseTimeout >= 60*time.Second {
		t.Fatalf("DefaultResponseTimeout %s is not shorter than consul-template's client timeout", DefaultResponseTimeout)
	}
}

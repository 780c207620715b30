package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/internal/clocktest"
	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// Test identities. The tokens are distinctive so that a leak is easy to find.
const (
	acmeEmail  = "ops@acme.example"
	acmeToken  = "tok-ACME-5f1c9e2b7d4a4c3e"
	otherEmail = "ops@other.example"
	otherToken = "tok-OTHER-9a8b7c6d5e4f3a2b"
)

// testEnv is one mount of the engine against a simulated API over HTTP.
type testEnv struct {
	t       *testing.T
	b       *backend
	storage *logical.InmemStorage
	sim     *sigscisim.Server
	srv     *httptest.Server
	logs    *logbuf.Buffer
	clock   *clocktest.Clock // the backend's clock

	mu      sync.Mutex
	secrets map[string]bool // every secret key seen, for the log check
	// wrap, if set, decorates the API client the backend builds.
	wrap func(keysAPI) keysAPI
	// tune, if set, changes the configuration of the API clients the
	// backend builds (shorter timeouts, fewer retries).
	tune func(*sigsci.Config)
	// view, if set, is the storage requests see instead of storage.
	view logical.Storage
}

func testSeed() sigscisim.Seed {
	return sigscisim.Seed{Corps: []sigscisim.CorpSeed{
		{
			Name:  "acme",
			Users: []sigscisim.UserSeed{{Email: acmeEmail, Token: acmeToken}},
			Sites: []sigscisim.SiteSeed{
				{Name: "www", DisplayName: "WWW"},
				{Name: "api", DisplayName: "API"},
				{Name: "shop", DisplayName: "Shop"},
			},
		},
		{
			Name:  "other",
			Users: []sigscisim.UserSeed{{Email: otherEmail, Token: otherToken}},
			Sites: []sigscisim.SiteSeed{{Name: "www", DisplayName: "Other WWW"}},
		},
	}}
}

// newStoredSite is a testEnv whose role vault-user (corp acme) has copied
// site www: the starting point of most stories.
func newStoredSite(t *testing.T) *testEnv {
	t.Helper()
	e := newTestEnv(t)
	e.writeRole("vault-user", "acme")
	e.copySite("vault-user", "www")
	return e
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{
		t:       t,
		storage: &logical.InmemStorage{},
		sim:     sigscisim.New(testSeed()),
		logs:    &logbuf.Buffer{},
		secrets: map[string]bool{},
		clock:   clocktest.New(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)),
	}
	e.sim.SetRetryAfter(0) // honouring a 429's Retry-After costs no test time
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	e.startBackend()
	return e
}

// startBackend sets up a backend instance of the mount over the env's
// storage, as Vault does when it mounts the engine or a node becomes active.
func (e *testEnv) startBackend() {
	e.t.Helper()
	b := newBackend("v0.1.0-test", e.newClient)
	b.now = e.clock.Now
	conf := logical.TestBackendConfig()
	conf.StorageView = e.storage
	conf.System.(*logical.StaticSystemView).PluginEnvironment = &logical.PluginEnvironment{VaultVersion: "1.19.0"}
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: e.logs, Level: hclog.Trace})
	if err := b.Setup(context.Background(), conf); err != nil {
		e.t.Fatalf("setup: %v", err)
	}
	e.b = b
	e.t.Cleanup(func() {
		b.Cleanup(context.Background())
		e.assertNoSecretInLogs()
	})
}

// secondMount is another mount of the engine (its own storage and
// backend) on the same API and clock: another Vault cluster or mount that
// manages the same corp.
func (e *testEnv) secondMount() *testEnv {
	e.t.Helper()
	m := &testEnv{
		t:       e.t,
		storage: &logical.InmemStorage{},
		sim:     e.sim,
		srv:     e.srv,
		logs:    &logbuf.Buffer{},
		secrets: map[string]bool{},
		clock:   e.clock,
	}
	m.startBackend()
	return m
}

// restart stops the backend, as Vault does on a seal, a step-down or a
// plugin reload, and starts a new one on the same storage.
func (e *testEnv) restart() {
	e.t.Helper()
	e.b.Cleanup(context.Background())
	e.startBackend()
}

// clientConfig is the API client configuration used in tests: short
// timeouts and backoffs, so fault tests run fast.
func clientConfig(baseURL, email, token string, log hclog.Logger) sigsci.Config {
	return sigsci.Config{
		BaseURL:    baseURL,
		Email:      email,
		Token:      token,
		Logger:     log,
		Timeout:    2 * time.Second,
		MaxRetries: 3,
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
}

func (e *testEnv) newClient(r *roleEntry, hc *http.Client, log hclog.Logger) (keysAPI, error) {
	cfg := clientConfig(r.APIURL, r.Email, r.Token, log)
	cfg.HTTPClient = hc
	if e.tune != nil {
		e.tune(&cfg)
	}
	c, err := sigsci.New(cfg)
	if err != nil {
		return nil, err
	}
	if e.wrap != nil {
		return e.wrap(c), nil
	}
	return c, nil
}

// wrapAPI decorates every API client the backend builds from now on, and
// drops the clients already built, so that no request keeps using an
// undecorated one.
func (e *testEnv) wrapAPI(wrap func(keysAPI) keysAPI) {
	e.wrap = wrap
	e.b.dropAllClients()
}

// tuneClients changes the configuration of every API client the backend
// builds from now on, and drops the clients already built.
func (e *testEnv) tuneClients(tune func(*sigsci.Config)) {
	e.tune = tune
	e.b.dropAllClients()
}

// api is a client of the simulated API acting outside Vault (an operator in
// the dashboard, or a step an interrupted operation had already done).
func (e *testEnv) api(email, token string) *sigsci.Client {
	e.t.Helper()
	c, err := sigsci.New(clientConfig(e.apiURL(), email, token, nil))
	if err != nil {
		e.t.Fatalf("api client: %v", err)
	}
	return c
}

// apiURL is the API root of the simulator, as a role's api_url.
func (e *testEnv) apiURL() string { return e.srv.URL + sigscisim.APIPrefix }

func (e *testEnv) acmeAPI() *sigsci.Client { return e.api(acmeEmail, acmeToken) }

// do sends one request through the backend, the way Vault's router would,
// and checks that no API token appears anywhere in the answer.
func (e *testEnv) do(op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	e.t.Helper()
	return e.doCtx(context.Background(), op, path, data)
}

// doCtx is do under the request context ctx (a deadline, as Vault sets one).
func (e *testEnv) doCtx(ctx context.Context, op logical.Operation, path string, data map[string]interface{}) (*logical.Response, error) {
	e.t.Helper()
	req := &logical.Request{
		Operation:  op,
		Path:       path,
		Data:       data,
		Storage:    e.requestStorage(),
		MountPoint: "sigsci/",
	}
	if op == logical.CreateOperation || op == logical.UpdateOperation {
		found, exists, err := e.b.HandleExistenceCheck(ctx, req)
		if err != nil {
			e.t.Fatalf("%s %s: existence check: %v", op, path, err)
		}
		if found {
			req.Operation = logical.UpdateOperation
			if !exists {
				req.Operation = logical.CreateOperation
			}
		}
	}
	resp, err := e.b.HandleRequest(ctx, req)
	e.assertNoToken(resp, err)
	e.noteSecrets(resp)
	return resp, err
}

// requestStorage is the storage a request sees.
func (e *testEnv) requestStorage() logical.Storage {
	if e.view != nil {
		return e.view
	}
	return e.storage
}

// ok sends a request that must succeed and returns its data.
func (e *testEnv) ok(op logical.Operation, path string, data map[string]interface{}) *logical.Response {
	e.t.Helper()
	resp, err := e.do(op, path, data)
	if err != nil || resp.IsError() {
		e.t.Fatalf("%s %s: err=%v resp=%v", op, path, err, respError(resp))
	}
	if resp == nil {
		resp = &logical.Response{}
	}
	return resp
}

// fails sends a request that must fail with the given HTTP status and a
// message containing want; it returns the message.
func (e *testEnv) fails(op logical.Operation, path string, data map[string]interface{}, status int, want string) string {
	e.t.Helper()
	resp, err := e.do(op, path, data)
	gotStatus, msg := statusOf(resp, err)
	if gotStatus != status || !strings.Contains(msg, want) {
		e.t.Fatalf("%s %s: want %d containing %q, got %d %q", op, path, status, want, gotStatus, msg)
	}
	return msg
}

// statusOf maps a backend answer to the HTTP status Vault would send.
func statusOf(resp *logical.Response, err error) (int, string) {
	var coded logical.HTTPCodedError
	switch {
	case errors.As(err, &coded):
		return coded.Code(), coded.Error()
	case err != nil:
		return http.StatusInternalServerError, err.Error()
	case resp != nil && resp.IsError():
		return http.StatusBadRequest, respError(resp)
	default:
		return http.StatusOK, ""
	}
}

func respError(resp *logical.Response) string {
	if resp == nil || resp.Data == nil {
		return ""
	}
	msg, _ := resp.Data["error"].(string)
	return msg
}

func (e *testEnv) assertNoToken(resp *logical.Response, err error) {
	e.t.Helper()
	var text string
	if resp != nil {
		raw, _ := json.Marshal(resp)
		text = string(raw)
	}
	if err != nil {
		text += err.Error()
	}
	for _, token := range []string{acmeToken, otherToken} {
		if strings.Contains(text, token) {
			e.t.Fatalf("an API token appears in an answer: %s", text)
		}
	}
}

// noteSecrets remembers every secret key the engine returned.
func (e *testEnv) noteSecrets(resp *logical.Response) {
	if resp == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var walk func(v interface{})
	walk = func(v interface{}) {
		switch v := v.(type) {
		case map[string]interface{}:
			for k, inner := range v {
				if s, ok := inner.(string); ok && k == "secretKey" && s != "" {
					e.secrets[s] = true
				}
				walk(inner)
			}
		}
	}
	walk(resp.Data)
}

// assertNoSecretInLogs checks the backend's log for tokens and for every
// secret key seen in answers or at the simulator.
func (e *testEnv) assertNoSecretInLogs() {
	e.t.Helper()
	logs := e.logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	secrets := []string{acmeToken, otherToken}
	for s := range e.secrets {
		secrets = append(secrets, s)
	}
	for _, corp := range []string{"acme", "other"} {
		for _, site := range []string{"www", "api", "shop"} {
			for _, k := range e.sim.KeySets(corp, site) {
				secrets = append(secrets, k.SecretKey)
			}
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			e.t.Errorf("a secret appears in the log:\n%s", logs)
			return
		}
	}
}

// writeRole creates a role for corp acme (or other) against the simulator.
func (e *testEnv) writeRole(name, corp string) {
	e.t.Helper()
	email, token := acmeEmail, acmeToken
	if corp == "other" {
		email, token = otherEmail, otherToken
	}
	e.ok(logical.UpdateOperation, "role/"+name, map[string]interface{}{
		"corp": corp, "email": email, "token": token + "\n", "api_url": e.apiURL(),
	})
}

// copySite stores a site's keys under a role.
func (e *testEnv) copySite(role, site string) {
	e.t.Helper()
	e.ok(logical.UpdateOperation, "creds/"+role+"/sites/"+site, nil)
}

// stored reads a site's stored keys straight from storage.
func (e *testEnv) stored(role, site string) *storedKeys {
	e.t.Helper()
	k, err := e.b.loadKeys(context.Background(), e.storage, role, site)
	if err != nil {
		e.t.Fatalf("load keys: %v", err)
	}
	return k
}

// simSets returns the access keys live at the simulator, and the primary.
func (e *testEnv) simSets(corp, site string) (all []string, primary string) {
	for _, k := range e.sim.KeySets(corp, site) {
		all = append(all, k.AccessKey)
		if k.Primary {
			primary = k.AccessKey
		}
	}
	return all, primary
}

// apiCalls is the number of calls the simulator has received since its
// counters were last reset.
func (e *testEnv) apiCalls() int {
	n := 0
	for _, calls := range e.sim.CallCounts() {
		n += calls
	}
	return n
}

// walCount is the number of WAL entries in storage.
func (e *testEnv) walCount() int {
	e.t.Helper()
	ids, err := framework.ListWAL(context.Background(), e.storage)
	if err != nil {
		e.t.Fatalf("list WAL: %v", err)
	}
	return len(ids)
}

// settled is what a story should leave at role vault-user's site www once
// it is over (see assertSettled).
type settled struct {
	nonPrimary []string // the stored non-primary access keys, in order
	untracked  []string // sets made outside Vault: at the API, never stored
}

// assertSettled checks that a story left role vault-user's site www
// settled: a stored primary that is the API's primary and none of
// want.nonPrimary, the stored non-primary keys want.nonPrimary, no set at
// the API but these and want.untracked, and no WAL entry. It returns the stored keys for the
// story's own checks; story says when, in the failures.
func (e *testEnv) assertSettled(story string, want settled) *storedKeys {
	e.t.Helper()
	k := e.stored("vault-user", "www")
	all, primary := e.simSets("acme", "www")
	if k == nil || k.AccessKey == "" || k.AccessKey != primary || slices.Contains(want.nonPrimary, primary) {
		e.t.Fatalf("%s: stored %v, API primary %s, want a new primary beside the non-primary %v", story, k, primary, want.nonPrimary)
	}
	if got := k.nonPrimaryAccessKeys(); !slices.Equal(got, want.nonPrimary) {
		e.t.Fatalf("%s: stored non-primary %v, want %v", story, got, want.nonPrimary)
	}
	wantAtAPI := slices.Concat([]string{k.AccessKey}, want.nonPrimary, want.untracked)
	if !slices.Equal(slices.Sorted(slices.Values(all)), slices.Sorted(slices.Values(wantAtAPI))) {
		e.t.Fatalf("%s: the API holds %v, want %v", story, all, wantAtAPI)
	}
	if n := e.walCount(); n != 0 {
		e.t.Fatalf("%s: %d WAL entries left", story, n)
	}
	return k
}

// storageSnapshot copies every storage entry, to prove a failed request
// changed nothing.
func (e *testEnv) storageSnapshot() map[string]string {
	e.t.Helper()
	out := map[string]string{}
	var walk func(prefix string)
	walk = func(prefix string) {
		keys, err := e.storage.List(context.Background(), prefix)
		if err != nil {
			e.t.Fatalf("list %q: %v", prefix, err)
		}
		for _, k := range keys {
			if strings.HasSuffix(k, "/") {
				walk(prefix + k)
				continue
			}
			entry, err := e.storage.Get(context.Background(), prefix+k)
			if err != nil {
				e.t.Fatalf("get %q: %v", prefix+k, err)
			}
			out[prefix+k] = string(entry.Value)
		}
	}
	walk("")
	return out
}

func (e *testEnv) assertStorageUnchanged(before map[string]string) {
	e.t.Helper()
	after := e.storageSnapshot()
	if len(after) != len(before) {
		e.t.Fatalf("storage changed: %d entries before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			e.t.Fatalf("storage entry %q changed", k)
		}
	}
}

// faultyAPI decorates the real client to reproduce failures that the
// simulator cannot: an answer lost after the API acted, a duplicate create
// from a retried request, a failure on the n-th call of one kind.
type faultyAPI struct {
	keysAPI
	mu sync.Mutex
	// per method: hook run instead of the call; nil hooks pass through.
	createHook  func(ctx context.Context, corp, site string) (sigsci.KeySet, error)
	listHook    func(ctx context.Context, call int, corp, site string) ([]sigsci.KeySet, error)
	deleteHook  func(ctx context.Context, corp, site, accessKey string) error
	primaryErr  map[string]error // site -> error from PrimaryKeys
	primaryHook func()           // run before every PrimaryKeys call
	listCalls   int
}

func (f *faultyAPI) CreateKeySet(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
	if f.createHook != nil {
		return f.createHook(ctx, corp, site)
	}
	return f.keysAPI.CreateKeySet(ctx, corp, site)
}

func (f *faultyAPI) DeleteKeySet(ctx context.Context, corp, site, accessKey string) error {
	if f.deleteHook != nil {
		return f.deleteHook(ctx, corp, site, accessKey)
	}
	return f.keysAPI.DeleteKeySet(ctx, corp, site, accessKey)
}

func (f *faultyAPI) ListKeySets(ctx context.Context, corp, site string) ([]sigsci.KeySet, error) {
	f.mu.Lock()
	f.listCalls++
	call := f.listCalls
	f.mu.Unlock()
	if f.listHook != nil {
		return f.listHook(ctx, call, corp, site)
	}
	return f.keysAPI.ListKeySets(ctx, corp, site)
}

func (f *faultyAPI) PrimaryKeys(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
	if f.primaryHook != nil {
		f.primaryHook()
	}
	if err, ok := f.primaryErr[site]; ok {
		return sigsci.KeySet{}, err
	}
	return f.keysAPI.PrimaryKeys(ctx, corp, site)
}

// data returns a string field of a response.
func str(t *testing.T, resp *logical.Response, key string) string {
	t.Helper()
	v, ok := resp.Data[key].(string)
	if !ok {
		t.Fatalf("field %q: want a string, got %T (%v)", key, resp.Data[key], resp.Data[key])
	}
	return v
}

// concurrencyGauge records the peak number of calls in flight.
type concurrencyGauge struct {
	mu       sync.Mutex
	cur, max int
}

func (g *concurrencyGauge) enter() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur++
	g.max = max(g.max, g.cur)
}

func (g *concurrencyGauge) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cur--
}

func (g *concurrencyGauge) peak() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

func newHTTPServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func secondsToDuration(n int) time.Duration { return time.Duration(n) * time.Second }

// assertCleanStops starts a background job of the backend with start and,
// once the job has asked the API (where the call hangs), checks that
// Cleanup stops it: what names the job in the failures.
func (e *testEnv) assertCleanStops(what string, start func() error) {
	e.t.Helper()
	e.sim.SetLatency(time.Minute) // the job's first API call hangs
	e.t.Cleanup(func() { e.sim.SetLatency(0) })
	lists := e.sim.Calls(sigscisim.EndpointListKeySets)
	if err := start(); err != nil {
		e.t.Fatal(err)
	}
	poll.Within(e.t, 10*time.Second, 5*time.Millisecond, what+" to ask the API", func() (bool, string) {
		n := e.sim.Calls(sigscisim.EndpointListKeySets)
		return n > lists, fmt.Sprintf("%d key-set lists, %d before", n, lists)
	})
	cleaned := make(chan struct{})
	go func() {
		e.b.Cleanup(context.Background())
		close(cleaned)
	}()
	select {
	case <-cleaned:
	case <-time.After(10 * time.Second):
		e.t.Fatalf("Clean did not stop %s", what)
	}
}

// rotateAndRetireWatched rotates site www and, past the overlap, retires
// its old set, running beforeChange before each of the two changes at the
// API (the create and the delete) and, if set, created with the set the
// create made.
func (e *testEnv) rotateAndRetireWatched(beforeChange func(), created func(sigsci.KeySet)) {
	e.t.Helper()
	e.wrapAPI(func(c keysAPI) keysAPI {
		return &faultyAPI{
			keysAPI: c,
			createHook: func(ctx context.Context, corp, site string) (sigsci.KeySet, error) {
				beforeChange()
				ks, err := c.CreateKeySet(ctx, corp, site)
				if created != nil {
					created(ks)
				}
				return ks, err
			},
			deleteHook: func(ctx context.Context, corp, site, accessKey string) error {
				beforeChange()
				return c.DeleteKeySet(ctx, corp, site, accessKey)
			},
		}
	})
	e.ok(logical.UpdateOperation, "rotate/sites/www", nil)
	e.passOverlap()
	e.ok(logical.DeleteOperation, "rotate/sites/www", nil)
}

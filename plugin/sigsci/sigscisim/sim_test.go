package sigscisim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	corpA  = "acme"
	corpB  = "globex"
	userA  = "ops@acme.test"
	tokenA = "token-acme-1"
	userB  = "ops@globex.test"
	tokenB = "token-globex-1"
)

func testSeed() Seed {
	return Seed{Corps: []CorpSeed{
		{Name: corpA, Users: []UserSeed{{userA, tokenA}}, Sites: []SiteSeed{{"www", "WWW"}, {"api", ""}}},
		{Name: corpB, Users: []UserSeed{{userB, tokenB}}, Sites: []SiteSeed{{"shop", "Shop"}}},
	}}
}

type fixture struct {
	t   *testing.T
	sim *Server
	srv *httptest.Server
}

func start(t *testing.T, seed Seed) *fixture {
	t.Helper()
	sim := New(seed)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &fixture{t: t, sim: sim, srv: srv}
}

// call makes one API call as email/token and returns status, headers and body.
func (f *fixture) call(method, path, email, token string) (int, http.Header, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+APIPrefix+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if email != "" {
		req.Header.Set("x-api-user", email)
	}
	if token != "" {
		req.Header.Set("x-api-token", token)
	}
	return f.do(req)
}

func (f *fixture) do(req *http.Request) (int, http.Header, []byte) {
	f.t.Helper()
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

func (f *fixture) control(method, path, body string) (int, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	status, _, b := f.do(req)
	return status, b
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func messageOf(t *testing.T, b []byte) string {
	t.Helper()
	return decode[map[string]any](t, b)["message"].(string)
}

func TestAuthentication(t *testing.T) {
	f := start(t, testSeed())
	cases := []struct {
		name, path, email, token string
		status                   int
	}{
		{"no headers", "/corps/acme/sites", "", "", http.StatusUnauthorized},
		{"wrong token", "/corps/acme/sites", userA, "nope", http.StatusUnauthorized},
		{"other user's token", "/corps/acme/sites", userA, tokenB, http.StatusUnauthorized},
		{"unknown user", "/corps/acme/sites", "who@x.test", tokenA, http.StatusUnauthorized},
		{"other corp", "/corps/globex/sites", userA, tokenA, http.StatusForbidden},
		{"unknown corp", "/corps/nope/sites", userA, tokenA, http.StatusNotFound},
		{"unknown site", "/corps/acme/sites/nope/keys", userA, tokenA, http.StatusNotFound},
		{"unknown endpoint", "/corps/acme/things", userA, tokenA, http.StatusNotFound},
		{"own corp", "/corps/acme/sites", userA, tokenA, http.StatusOK},
		{"second corp", "/corps/globex/sites/shop/agentKeys", userB, tokenB, http.StatusOK},
	}
	for _, c := range cases {
		status, h, body := f.call(http.MethodGet, c.path, c.email, c.token)
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, status, c.status, body)
			continue
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
		}
		if status != http.StatusOK && messageOf(t, body) == "" {
			t.Errorf("%s: error without message: %s", c.name, body)
		}
	}
}

func TestUserInSeveralCorpsWithSeveralTokens(t *testing.T) {
	seed := testSeed()
	seed.Corps[1].Users = append(seed.Corps[1].Users, UserSeed{userA, "second-token"})
	f := start(t, seed)
	for _, c := range []struct{ path, token string }{
		{"/corps/acme/sites", tokenA}, {"/corps/acme/sites", "second-token"},
		{"/corps/globex/sites", tokenA}, {"/corps/globex/sites", "second-token"},
	} {
		if status, _, body := f.call(http.MethodGet, c.path, userA, c.token); status != http.StatusOK {
			t.Errorf("GET %s: %d %s", c.path, status, body)
		}
	}
}

func TestShapesFollowTheAPINote(t *testing.T) {
	f := start(t, testSeed())
	_, _, body := f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA)
	sites := decode[map[string]any](t, body)
	data := sites["data"].([]any)
	if len(data) != 2 || sites["totalCount"].(float64) != 2 {
		t.Fatalf("sites = %s", body)
	}
	first := data[0].(map[string]any)
	if first["name"] != "www" || first["displayName"] != "WWW" {
		t.Errorf("first site = %v", first)
	}
	if _, err := time.Parse(time.RFC3339, first["created"].(string)); err != nil {
		t.Errorf("created is not RFC 3339: %v", err)
	}
	if second := data[1].(map[string]any); second["displayName"] != "api" {
		t.Errorf("an empty display name should default to the name: %v", second)
	}

	_, _, body = f.call(http.MethodGet, "/corps/acme/sites/www/keys", userA, tokenA)
	primary := decode[map[string]string](t, body)
	if primary["name"] != "www" || primary["accessKey"] == "" || primary["secretKey"] == "" {
		t.Fatalf("primary keys = %s", body)
	}

	_, _, body = f.call(http.MethodGet, "/corps/acme/sites/www/agentKeys", userA, tokenA)
	list := decode[struct {
		Data []map[string]any `json:"data"`
	}](t, body)
	if len(list.Data) != 1 {
		t.Fatalf("agentKeys = %s", body)
	}
	k := list.Data[0]
	if k["accessKey"] != primary["accessKey"] || k["secretKey"] != primary["secretKey"] || k["primary"] != true {
		t.Errorf("agentKeys item %v does not match the primary %v", k, primary)
	}
}

func TestEachSiteStartsWithItsOwnRandomKeys(t *testing.T) {
	sim := New(testSeed())
	seen := map[string]bool{}
	for _, ref := range [][2]string{{corpA, "www"}, {corpA, "api"}, {corpB, "shop"}} {
		sets := sim.KeySets(ref[0], ref[1])
		if len(sets) != 1 || !sets[0].Primary {
			t.Fatalf("%v: sets = %v", ref, sets)
		}
		k := sets[0]
		if len(k.AccessKey) != 36 || strings.Count(k.AccessKey, "-") != 4 {
			t.Errorf("access key %q is not UUID-like", k.AccessKey)
		}
		if len(k.SecretKey) < 32 {
			t.Errorf("secret key too short: %d", len(k.SecretKey))
		}
		if seen[k.AccessKey] || seen[k.SecretKey] {
			t.Errorf("keys repeat across sites")
		}
		seen[k.AccessKey], seen[k.SecretKey] = true, true
	}
	if sim.KeySets(corpA, "nope") != nil || sim.KeySets("nope", "www") != nil {
		t.Error("KeySets of an unknown site should be nil")
	}
}

func TestRotationLifecycle(t *testing.T) {
	f := start(t, testSeed())
	old := f.sim.KeySets(corpA, "www")[0]

	status, _, body := f.call(http.MethodPost, "/corps/acme/sites/www/agentKeys", userA, tokenA)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	created := decode[map[string]any](t, body)
	newKey := created["accessKey"].(string)
	if created["primary"] != true || created["secretKey"] == "" || newKey == old.AccessKey {
		t.Fatalf("created = %s", body)
	}
	sets := f.sim.KeySets(corpA, "www")
	if len(sets) != 2 || sets[0].Primary || !sets[1].Primary || sets[1].AccessKey != newKey {
		t.Fatalf("after create: %v", sets)
	}
	_, _, body = f.call(http.MethodGet, "/corps/acme/sites/www/keys", userA, tokenA)
	if got := decode[map[string]string](t, body)["accessKey"]; got != newKey {
		t.Errorf("primary after create = %s, want %s", got, newKey)
	}

	// Both sets are live during the overlap.
	if r := f.sim.CheckAgentKeys(old.AccessKey, old.SecretKey); !r.Live || r.Primary {
		t.Errorf("old set during overlap: %+v", r)
	}

	status, _, body = f.call(http.MethodDelete, "/corps/acme/sites/www/agentKeys/"+newKey, userA, tokenA)
	if status != http.StatusBadRequest || !strings.Contains(messageOf(t, body), "primary") {
		t.Errorf("deleting the primary: %d %s", status, body)
	}
	status, _, body = f.call(http.MethodDelete, "/corps/acme/sites/www/agentKeys/"+old.AccessKey, userA, tokenA)
	if status != http.StatusNoContent || len(body) != 0 {
		t.Fatalf("deleting the old set: %d %s", status, body)
	}
	status, _, _ = f.call(http.MethodDelete, "/corps/acme/sites/www/agentKeys/"+old.AccessKey, userA, tokenA)
	if status != http.StatusNotFound {
		t.Errorf("deleting it again: %d, want 404", status)
	}
	if r := f.sim.CheckAgentKeys(old.AccessKey, old.SecretKey); r.Live || r.Reason != "retired" {
		t.Errorf("old set after delete: %+v", r)
	}
	if sets := f.sim.KeySets(corpA, "www"); len(sets) != 1 || sets[0].AccessKey != newKey {
		t.Errorf("after delete: %v", sets)
	}
	// Another site is untouched.
	if sets := f.sim.KeySets(corpA, "api"); len(sets) != 1 {
		t.Errorf("other site changed: %v", sets)
	}
	// Secrets still names the retired set's secret key, the new one and
	// the API token, for tests that search logs for any of them.
	secrets := f.sim.Secrets()
	for what, want := range map[string]string{"the retired secret key": old.SecretKey, "the new secret key": created["secretKey"].(string), "the API token": tokenA} {
		if !slices.Contains(secrets, want) {
			t.Errorf("Secrets() lacks %s", what)
		}
	}
}

func TestDeleteWithEscapedAccessKey(t *testing.T) {
	f := start(t, testSeed())
	status, _, body := f.call(http.MethodDelete, "/corps/acme/sites/www/agentKeys/a%2Fb", userA, tokenA)
	if status != http.StatusNotFound || !strings.Contains(messageOf(t, body), "agent key") {
		t.Errorf("escaped unknown key: %d %s", status, body)
	}
}

func TestListSitesPaging(t *testing.T) {
	seed := testSeed()
	for i := range 250 {
		seed.Corps[0].Sites = append(seed.Corps[0].Sites, SiteSeed{Name: fmt.Sprintf("s%03d", i)})
	}
	f := start(t, seed)
	type page struct {
		Data []struct {
			Name string `json:"name"`
		} `json:"data"`
		TotalCount int `json:"totalCount"`
	}
	var names []string
	for p := 1; p <= 3; p++ {
		status, _, body := f.call(http.MethodGet, fmt.Sprintf("/corps/acme/sites?page=%d&limit=100", p), userA, tokenA)
		if status != http.StatusOK {
			t.Fatalf("page %d: %d %s", p, status, body)
		}
		pg := decode[page](t, body)
		if pg.TotalCount != 252 {
			t.Errorf("totalCount = %d", pg.TotalCount)
		}
		for _, d := range pg.Data {
			names = append(names, d.Name)
		}
	}
	if len(names) != 252 || names[0] != "www" || names[251] != "s249" {
		t.Errorf("got %d names, first %q last %q", len(names), names[0], names[len(names)-1])
	}
	_, _, body := f.call(http.MethodGet, "/corps/acme/sites?page=4&limit=100", userA, tokenA)
	if pg := decode[page](t, body); len(pg.Data) != 0 {
		t.Errorf("page past the end has %d items", len(pg.Data))
	}
	for _, q := range []string{"limit=101", "limit=0", "page=0", "page=x"} {
		if status, _, _ := f.call(http.MethodGet, "/corps/acme/sites?"+q, userA, tokenA); status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", q, status)
		}
	}
}

func TestFailNextAndCounts(t *testing.T) {
	f := start(t, testSeed())
	f.sim.FailNext(2, http.StatusTooManyRequests)
	f.sim.SetRetryAfter(7)
	for range 2 {
		status, h, body := f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA)
		if status != http.StatusTooManyRequests || h.Get("Retry-After") != "7" || messageOf(t, body) == "" {
			t.Fatalf("injected 429: %d %q %s", status, h.Get("Retry-After"), body)
		}
	}
	if status, _, _ := f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA); status != http.StatusOK {
		t.Fatalf("third call: %d", status)
	}
	f.sim.FailNext(1, 0)
	if status, h, _ := f.call(http.MethodGet, "/corps/acme/sites/www/keys", userA, tokenA); status != http.StatusServiceUnavailable || h.Get("Retry-After") != "" {
		t.Fatalf("default failure: %d, Retry-After %q", status, h.Get("Retry-After"))
	}
	f.call(http.MethodPost, "/corps/acme/sites/www/agentKeys", userA, tokenA)
	f.call(http.MethodGet, "/corps/acme/nothing", userA, tokenA)
	want := map[string]int{EndpointListSites: 3, EndpointPrimaryKeys: 1, EndpointCreateKeySet: 1, EndpointUnknown: 1}
	for ep, n := range want {
		if got := f.sim.Calls(ep); got != n {
			t.Errorf("Calls(%q) = %d, want %d", ep, got, n)
		}
	}
	f.sim.ResetCalls()
	if got := f.sim.Calls(EndpointListSites); got != 0 {
		t.Errorf("after reset: %d", got)
	}
}

func TestRateLimitPerUserWithClock(t *testing.T) {
	f := start(t, testSeed())
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	f.sim.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	f.sim.SetRateLimit(2)
	statuses := func(email, token, path string, n int) []int {
		var out []int
		for range n {
			s, h, _ := f.call(http.MethodGet, path, email, token)
			if s == http.StatusTooManyRequests && h.Get("Retry-After") != "1" {
				t.Errorf("429 without Retry-After 1: %q", h.Get("Retry-After"))
			}
			out = append(out, s)
		}
		return out
	}
	if got := fmt.Sprint(statuses(userA, tokenA, "/corps/acme/sites", 3)); got != "[200 200 429]" {
		t.Errorf("user A in one second: %s", got)
	}
	if got := fmt.Sprint(statuses(userB, tokenB, "/corps/globex/sites", 2)); got != "[200 200]" {
		t.Errorf("user B is limited separately: %s", got)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	if got := fmt.Sprint(statuses(userA, tokenA, "/corps/acme/sites", 1)); got != "[200]" {
		t.Errorf("user A in the next second: %s", got)
	}
	f.sim.SetRateLimit(0)
	if got := fmt.Sprint(statuses(userA, tokenA, "/corps/acme/sites", 4)); got != "[200 200 200 200]" {
		t.Errorf("limit off: %s", got)
	}
}

func TestLatencyEndsWhenClientLeaves(t *testing.T) {
	f := start(t, testSeed())
	f.sim.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+APIPrefix+"/corps/acme/sites", nil)
	began := time.Now()
	_, err := f.srv.Client().Do(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	if time.Since(began) > 10*time.Second {
		t.Fatal("the client waited far beyond its deadline")
	}
	// srv.Close in Cleanup blocks until the handler returns: this test would
	// hang there if the latency ignored the request context.
}

func TestLatencyDelaysCalls(t *testing.T) {
	f := start(t, testSeed())
	f.sim.SetLatency(80 * time.Millisecond)
	began := time.Now()
	if status, _, _ := f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA); status != http.StatusOK {
		t.Fatal(status)
	}
	if took := time.Since(began); took < 80*time.Millisecond {
		t.Errorf("call took %s, want at least 80ms", took)
	}
}

func freshConnClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

func TestDropBeforeHandling(t *testing.T) {
	f := start(t, testSeed())
	f.sim.DropNext(1)
	if err := f.postCreateCtx(context.Background()); err == nil {
		t.Fatal("dropped call answered")
	}
	if n := len(f.sim.KeySets(corpA, "www")); n != 1 {
		t.Errorf("a call dropped before handling created a set: %d sets", n)
	}
	if got := f.sim.Calls(EndpointCreateKeySet); got != 1 {
		t.Errorf("dropped call not counted: %d", got)
	}
}

func TestDropAfterHandling(t *testing.T) {
	f := start(t, testSeed())
	f.sim.DropNextAfterHandling(1)
	if err := f.postCreateCtx(context.Background()); err == nil {
		t.Fatal("dropped call answered")
	}
	if n := len(f.sim.KeySets(corpA, "www")); n != 2 {
		t.Errorf("a call dropped after handling should have created a set: %d sets", n)
	}
	if fl := f.sim.Faults(); fl.DropNextAfterHandling != 0 {
		t.Errorf("drop count not consumed: %+v", fl)
	}
}

func TestAgentCheckEndpoint(t *testing.T) {
	f := start(t, testSeed())
	k := f.sim.KeySets(corpB, "shop")[0]
	cases := []struct {
		body   string
		status int
		want   AgentCheckResult
	}{
		{fmt.Sprintf(`{"accesskeyid":%q,"secretaccesskey":%q}`, k.AccessKey, k.SecretKey), 200, AgentCheckResult{Live: true, Corp: corpB, Site: "shop", Primary: true}},
		{fmt.Sprintf(`{"accesskeyid":%q,"secretaccesskey":"wrong"}`, k.AccessKey), 200, AgentCheckResult{Reason: "secret does not match"}},
		{`{"accesskeyid":"nope","secretaccesskey":"x"}`, 200, AgentCheckResult{Reason: "unknown access key"}},
		{`{"accesskeyid":"nope"}`, 400, AgentCheckResult{}},
		{`not json`, 400, AgentCheckResult{}},
	}
	for _, c := range cases {
		status, body := f.control(http.MethodPost, "/sim/agent/check", c.body)
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.body, status, c.status, body)
			continue
		}
		if status == 200 {
			if got := decode[AgentCheckResult](t, body); got != c.want {
				t.Errorf("%s: %+v, want %+v", c.body, got, c.want)
			}
			if strings.Contains(string(body), k.SecretKey) {
				t.Errorf("the answer repeats the secret")
			}
		}
	}
	if got := f.sim.Calls(EndpointAgentCheck); got != len(cases) {
		t.Errorf("agent checks counted %d, want %d", got, len(cases))
	}
}

func TestControlEndpoints(t *testing.T) {
	f := start(t, testSeed())
	steps := []struct{ method, path, body string }{
		{http.MethodPost, "/sim/fail", `{"n":2,"status":502}`},
		{http.MethodPost, "/sim/drop", `{"n":3}`},
		{http.MethodPost, "/sim/drop", `{"n":4,"afterHandling":true}`},
		{http.MethodPost, "/sim/latency", `{"latency":"5ms"}`},
		{http.MethodPost, "/sim/ratelimit", `{"perSecond":9,"retryAfter":0}`},
	}
	for _, s := range steps {
		if status, body := f.control(s.method, s.path, s.body); status != http.StatusOK {
			t.Fatalf("%s %s: %d %s", s.method, s.path, status, body)
		}
	}
	fl := f.sim.Faults()
	if fl.FailNext != 2 || fl.FailStatus != 502 || fl.DropNext != 3 || fl.DropNextAfterHandling != 4 ||
		fl.Latency != Duration(5*time.Millisecond) || fl.RateLimit != 9 || fl.RetryAfter == nil || *fl.RetryAfter != 0 {
		t.Fatalf("faults after control calls: %+v", fl)
	}
	status, body := f.control(http.MethodGet, "/sim/faults", "")
	if status != 200 || !strings.Contains(string(body), `"latency":"5ms"`) {
		t.Errorf("GET /sim/faults: %d %s", status, body)
	}
	if status, body := f.control(http.MethodPut, "/sim/faults", `{}`); status != 200 || f.sim.Faults().FailNext != 0 {
		t.Errorf("PUT /sim/faults {}: %d %s", status, body)
	}
	for _, bad := range []struct{ method, path, body string }{
		{http.MethodPost, "/sim/fail", `{"n":1,"status":200}`},
		{http.MethodPost, "/sim/latency", `{"latency":"soon"}`},
		{http.MethodPost, "/sim/ratelimit", `{"perSecond":-1}`},
		{http.MethodPost, "/sim/drop", `{"n":1,"extra":true}`},
		{http.MethodPut, "/sim/faults", `{"failStatus":700}`},
		{http.MethodPost, "/sim/sites", `{"corp":"acme","name":"Bad Name"}`},
		{http.MethodGet, "/sim/nothing", ``},
	} {
		if status, body := f.control(bad.method, bad.path, bad.body); status < 400 || messageOf(t, body) == "" {
			t.Errorf("%s %s %s: %d %s", bad.method, bad.path, bad.body, status, body)
		}
	}

	if status, body := f.control(http.MethodPost, "/sim/sites", `{"corp":"acme","name":"blog","displayName":"Blog"}`); status != http.StatusCreated {
		t.Fatalf("add site: %d %s", status, body)
	}
	if status, _ := f.control(http.MethodPost, "/sim/sites", `{"corp":"acme","name":"blog"}`); status != http.StatusConflict {
		t.Errorf("adding it again: %d", status)
	}
	f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA)
	status, body = f.control(http.MethodGet, "/sim/state", "")
	st := decode[State](t, body)
	if status != 200 || len(st.Corps) != 2 || len(st.Corps[0].Sites) != 3 || st.Corps[0].Sites[2].Name != "blog" ||
		len(st.Corps[0].Sites[2].Keys) != 1 || st.Corps[0].Users[0] != userA {
		t.Errorf("state: %d %s", status, body)
	}
	for _, ref := range [][2]string{{corpA, "www"}, {corpB, "shop"}} {
		if strings.Contains(string(body), f.sim.KeySets(ref[0], ref[1])[0].SecretKey) {
			t.Error("state shows a secret")
		}
	}
	status, body = f.control(http.MethodGet, "/sim/calls", "")
	if calls := decode[map[string]int](t, body); status != 200 || calls[EndpointListSites] != 1 {
		t.Errorf("calls: %s", body)
	}
	if status, _ := f.control(http.MethodDelete, "/sim/calls", ""); status != http.StatusNoContent || f.sim.Calls(EndpointListSites) != 0 {
		t.Errorf("reset calls: %d", status)
	}
	if status, _ := f.control(http.MethodDelete, "/sim/sites/acme/blog", ""); status != http.StatusNoContent || f.sim.KeySets(corpA, "blog") != nil {
		t.Errorf("remove site: %d", status)
	}
	if status, _ := f.control(http.MethodDelete, "/sim/sites/acme/blog", ""); status != http.StatusNotFound {
		t.Errorf("remove it again: %d", status)
	}
}

func TestSeedValidationAndJSON(t *testing.T) {
	raw := `{"corps":[{"name":"acme","users":[{"email":"a@x","token":"t"}],"sites":[{"name":"www"}]}],
	         "faults":{"latency":"20ms","rateLimit":5,"retryAfter":0,"failNext":1,"failStatus":500}}`
	var seed Seed
	if err := json.NewDecoder(bytes.NewReader([]byte(raw))).Decode(&seed); err != nil {
		t.Fatal(err)
	}
	if err := seed.Validate(); err != nil {
		t.Fatal(err)
	}
	sim := New(seed)
	if fl := sim.Faults(); fl.Latency != Duration(20*time.Millisecond) || fl.RateLimit != 5 || fl.FailNext != 1 || *fl.RetryAfter != 0 {
		t.Errorf("faults from seed: %+v", fl)
	}
	bad := []Seed{
		{Corps: []CorpSeed{{Name: "Acme"}}},
		{Corps: []CorpSeed{{Name: "a"}, {Name: "a"}}},
		{Corps: []CorpSeed{{Name: "a", Sites: []SiteSeed{{Name: "x"}, {Name: "x"}}}}},
		{Corps: []CorpSeed{{Name: "a", Sites: []SiteSeed{{Name: ".."}}}}},
		{Corps: []CorpSeed{{Name: "a", Users: []UserSeed{{Email: "e"}}}}},
		{Faults: Faults{FailStatus: 200}},
		{Faults: Faults{RateLimit: -1}},
	}
	for _, s := range bad {
		if err := s.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", s)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("New accepted an invalid seed")
		}
	}()
	New(bad[0])
}

func TestConcurrentUse(t *testing.T) {
	f := start(t, testSeed())
	f.sim.SetRetryAfter(0)
	var wg sync.WaitGroup
	const workers, rounds = 8, 15
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				switch (w + i) % 5 {
				case 0:
					f.call(http.MethodPost, "/corps/acme/sites/www/agentKeys", userA, tokenA)
				case 1:
					f.call(http.MethodGet, "/corps/acme/sites/www/agentKeys", userA, tokenA)
				case 2:
					f.sim.FailNext(1, 500)
					f.sim.State()
				case 3:
					f.sim.AddSite(corpA, SiteSeed{Name: fmt.Sprintf("w%d-%d", w, i)})
					f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA)
				case 4:
					for _, k := range f.sim.KeySets(corpA, "www") {
						if !k.Primary {
							f.call(http.MethodDelete, "/corps/acme/sites/www/agentKeys/"+k.AccessKey, userA, tokenA)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	sets := f.sim.KeySets(corpA, "www")
	primaries := 0
	for _, k := range sets {
		if k.Primary {
			primaries++
		}
	}
	if primaries != 1 {
		t.Errorf("%d primary sets after concurrent use: %v", primaries, sets)
	}
}

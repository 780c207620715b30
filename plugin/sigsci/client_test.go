package sigsci_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/poll"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

const (
	corp  = "acme"
	email = "ops@acme.test"
	token = "tok-9f8e7d6c5b4a-SECRET"
)

func seed(sites ...string) sigscisim.Seed {
	if len(sites) == 0 {
		sites = []string{"www", "api"}
	}
	c := sigscisim.CorpSeed{Name: corp, Users: []sigscisim.UserSeed{{Email: email, Token: token}}}
	for _, s := range sites {
		c.Sites = append(c.Sites, sigscisim.SiteSeed{Name: s, DisplayName: strings.ToUpper(s)})
	}
	other := sigscisim.CorpSeed{Name: "globex", Users: []sigscisim.UserSeed{{Email: "x@globex.test", Token: "other"}},
		Sites: []sigscisim.SiteSeed{{Name: "shop"}}}
	return sigscisim.Seed{Corps: []sigscisim.CorpSeed{c, other}}
}

// fastConfig keeps backoffs tiny so retries cost microseconds.
func fastConfig(baseURL string) sigsci.Config {
	return sigsci.Config{
		BaseURL: baseURL, Email: email, Token: token,
		Timeout: 5 * time.Second, MinBackoff: time.Microsecond, MaxBackoff: 10 * time.Microsecond,
	}
}

func startSim(t *testing.T, s sigscisim.Seed) (*sigscisim.Server, *httptest.Server) {
	t.Helper()
	sim := sigscisim.New(s)
	sim.SetRetryAfter(0)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

func newClient(t *testing.T, cfg sigsci.Config) *sigsci.Client {
	t.Helper()
	c, err := sigsci.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func simClient(t *testing.T, s sigscisim.Seed, tweak ...func(*sigsci.Config)) (*sigscisim.Server, *sigsci.Client) {
	t.Helper()
	sim, srv := startSim(t, s)
	cfg := fastConfig(srv.URL + sigscisim.APIPrefix)
	for _, f := range tweak {
		f(&cfg)
	}
	return sim, newClient(t, cfg)
}

// recordSleeps makes the client record its waits instead of sleeping.
func recordSleeps(c *sigsci.Client) *[]time.Duration {
	var mu sync.Mutex
	waits := &[]time.Duration{}
	sigsci.SetSleep(c, func(_ context.Context, d time.Duration) error {
		mu.Lock()
		defer mu.Unlock()
		*waits = append(*waits, d)
		return nil
	})
	return waits
}

// waitCalls waits until the simulator has answered at least n calls of
// endpoint.
func waitCalls(t *testing.T, sim *sigscisim.Server, endpoint string, n int, what string) {
	t.Helper()
	poll.Within(t, 10*time.Second, time.Millisecond, what, func() (bool, string) {
		got := sim.Calls(endpoint)
		return got >= n, fmt.Sprintf("%d calls of %s", got, endpoint)
	})
}

func TestRotationAgainstSimulator(t *testing.T) {
	sim, c := simClient(t, seed())
	ctx := context.Background()

	sites, err := c.ListSites(ctx, corp)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 2 || sites[0].Name != "www" || sites[0].DisplayName != "WWW" || sites[0].Created.IsZero() {
		t.Fatalf("sites = %+v", sites)
	}

	primary, err := c.PrimaryKeys(ctx, corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	if live := sim.KeySets(corp, "www"); !primary.Primary || primary != (sigsci.KeySet{AccessKey: live[0].AccessKey, SecretKey: live[0].SecretKey, Primary: true}) {
		t.Fatalf("primary = %v, simulator has %v", primary, live)
	}

	created, err := c.CreateKeySet(ctx, corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	if !created.Primary || created.AccessKey == primary.AccessKey || created.SecretKey == "" || created.Created.IsZero() {
		t.Fatalf("created = %v", created)
	}
	sets, err := c.ListKeySets(ctx, corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0].AccessKey != primary.AccessKey || sets[0].Primary || sets[1] != created {
		t.Fatalf("sets = %v", sets)
	}

	err = c.DeleteKeySet(ctx, corp, "www", created.AccessKey)
	var apiErr *sigsci.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, "primary") {
		t.Fatalf("deleting the primary: %v", err)
	}
	if err := c.DeleteKeySet(ctx, corp, "www", primary.AccessKey); err != nil {
		t.Fatalf("retiring the old set: %v", err)
	}
	if err := c.DeleteKeySet(ctx, corp, "www", primary.AccessKey); !sigsci.IsNotFound(err) {
		t.Fatalf("retiring it again: %v, want a 404", err)
	}
	if r := sim.CheckAgentKeys(primary.AccessKey, primary.SecretKey); r.Live {
		t.Errorf("old set still live: %+v", r)
	}
	if r := sim.CheckAgentKeys(created.AccessKey, created.SecretKey); !r.Live || !r.Primary {
		t.Errorf("new set not live: %+v", r)
	}
}

func TestRetriesOn429HonouringRetryAfter(t *testing.T) {
	sim, c := simClient(t, seed())
	sim.FailNext(2, http.StatusTooManyRequests)
	sim.SetRetryAfter(3)
	waits := recordSleeps(c)
	if _, err := c.ListKeySets(context.Background(), corp, "www"); err != nil {
		t.Fatal(err)
	}
	if got := sim.Calls(sigscisim.EndpointListKeySets); got != 3 {
		t.Errorf("calls = %d, want 3", got)
	}
	if fmt.Sprint(*waits) != "[3s 3s]" {
		t.Errorf("waits = %v, want the Retry-After of 3s twice", *waits)
	}
}

func TestRetryAfterZeroBeatsALongBackoff(t *testing.T) {
	// With a one-hour backoff the call could only finish in time if the
	// client used the server's "Retry-After: 0" instead; it really sleeps here.
	sim, c := simClient(t, seed(), func(cfg *sigsci.Config) {
		cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	})
	sim.FailNext(1, http.StatusTooManyRequests)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.PrimaryKeys(ctx, corp, "www"); err != nil {
		t.Fatal(err)
	}
	if got := sim.Calls(sigscisim.EndpointPrimaryKeys); got != 2 {
		t.Errorf("calls = %d, want 2", got)
	}
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", time.Now().Add(30*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, `{"data":[]}`)
	}))
	defer srv.Close()
	c := newClient(t, fastConfig(srv.URL))
	waits := recordSleeps(c)
	if _, err := c.ListSites(context.Background(), corp); err != nil {
		t.Fatal(err)
	}
	if len(*waits) != 1 || (*waits)[0] < 28*time.Second || (*waits)[0] > 30*time.Second {
		t.Errorf("waits = %v, want about 30s from the HTTP date", *waits)
	}
}

func TestRetryAfterBeyondTheCapGivesUp(t *testing.T) {
	sim, c := simClient(t, seed(), func(cfg *sigsci.Config) { cfg.MaxRetryAfter = time.Minute })
	sim.FailNext(1, http.StatusTooManyRequests)
	sim.SetRetryAfter(3600)
	waits := recordSleeps(c)
	_, err := c.ListSites(context.Background(), corp)
	if sigsci.StatusCode(err) != http.StatusTooManyRequests || !strings.Contains(err.Error(), "retry after 1h0m0s") {
		t.Fatalf("err = %v", err)
	}
	if len(*waits) != 0 || sim.Calls(sigscisim.EndpointListSites) != 1 {
		t.Errorf("waited %v, %d calls; want no wait and one call", *waits, sim.Calls(sigscisim.EndpointListSites))
	}
}

func TestNoRetryWhenTheDeadlineIsTooClose(t *testing.T) {
	sim, c := simClient(t, seed())
	sim.FailNext(1, http.StatusTooManyRequests)
	sim.SetRetryAfter(120)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waits := recordSleeps(c)
	_, err := c.ListSites(ctx, corp)
	if sigsci.StatusCode(err) != http.StatusTooManyRequests || len(*waits) != 0 {
		t.Fatalf("err = %v, waits = %v", err, *waits)
	}
}

func TestRetriesOn5xxWithGrowingBackoff(t *testing.T) {
	sim, c := simClient(t, seed(), func(cfg *sigsci.Config) {
		cfg.MinBackoff, cfg.MaxBackoff = 100*time.Millisecond, 400*time.Millisecond
	})
	sim.FailNext(4, http.StatusInternalServerError)
	waits := recordSleeps(c)
	if _, err := c.PrimaryKeys(context.Background(), corp, "api"); err != nil {
		t.Fatal(err)
	}
	if got := sim.Calls(sigscisim.EndpointPrimaryKeys); got != 5 {
		t.Errorf("calls = %d, want 5", got)
	}
	bounds := [][2]time.Duration{{50, 100}, {100, 200}, {200, 400}, {200, 400}}
	if len(*waits) != len(bounds) {
		t.Fatalf("waits = %v", *waits)
	}
	for i, b := range bounds {
		if w := (*waits)[i]; w < b[0]*time.Millisecond || w > b[1]*time.Millisecond {
			t.Errorf("wait %d = %s, want within [%dms, %dms]", i, w, b[0], b[1])
		}
	}
}

func TestRetriesAreBounded(t *testing.T) {
	sim, c := simClient(t, seed(), func(cfg *sigsci.Config) { cfg.MaxRetries = 2 })
	sim.FailNext(10, http.StatusBadGateway)
	_, err := c.ListSites(context.Background(), corp)
	if sigsci.StatusCode(err) != http.StatusBadGateway || !strings.Contains(err.Error(), "gave up after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if got := sim.Calls(sigscisim.EndpointListSites); got != 3 {
		t.Errorf("calls = %d, want 3", got)
	}

	sim.ResetCalls()
	sim.FailNext(10, http.StatusBadGateway)
	noRetry := newClient(t, sigsci.Config{BaseURL: c2url(t, sim), Email: email, Token: token, MaxRetries: -1})
	if _, err := noRetry.ListSites(context.Background(), corp); sigsci.StatusCode(err) != http.StatusBadGateway {
		t.Fatalf("err = %v", err)
	}
	if got := sim.Calls(sigscisim.EndpointListSites); got != 1 {
		t.Errorf("MaxRetries -1: calls = %d, want 1", got)
	}
}

// c2url serves sim on a second server (the first one's URL is inside its client).
func c2url(t *testing.T, sim *sigscisim.Server) string {
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return srv.URL + sigscisim.APIPrefix
}

func TestNonRetryable4xxReturnsAtOnce(t *testing.T) {
	sim, c := simClient(t, seed())
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound} {
		sim.ResetCalls()
		sim.FailNext(1, status)
		_, err := c.ListKeySets(context.Background(), corp, "www")
		if sigsci.StatusCode(err) != status {
			t.Errorf("status %d: err = %v", status, err)
		}
		if got := sim.Calls(sigscisim.EndpointListKeySets); got != 1 {
			t.Errorf("status %d: %d calls, want 1", status, got)
		}
	}
}

func TestConnectionDropsAreRetried(t *testing.T) {
	sim, srv := startSim(t, seed())
	cfg := fastConfig(srv.URL + sigscisim.APIPrefix)
	// Fresh connections, so it is this client's retry loop (not the
	// transport's replay of idempotent requests) that recovers.
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	c := newClient(t, cfg)
	sim.DropNext(2)
	sets, err := c.ListKeySets(context.Background(), corp, "www")
	if err != nil || len(sets) != 1 {
		t.Fatalf("sets = %v, err = %v", sets, err)
	}
	if got := sim.Calls(sigscisim.EndpointListKeySets); got != 3 {
		t.Errorf("calls = %d, want 3", got)
	}
	// A DELETE whose answer is lost is repeated; the repeat finds the set gone.
	if _, err := c.CreateKeySet(context.Background(), corp, "www"); err != nil {
		t.Fatal(err)
	}
	old := sets[0].AccessKey
	sim.DropNextAfterHandling(1)
	err = c.DeleteKeySet(context.Background(), corp, "www", old)
	if !sigsci.IsNotFound(err) {
		t.Fatalf("repeated DELETE after a lost answer: %v, want a 404", err)
	}
	if got := sim.Calls(sigscisim.EndpointDeleteKeySet); got != 2 {
		t.Errorf("DELETE calls = %d, want 2", got)
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	sim, c := simClient(t, seed(), func(cfg *sigsci.Config) {
		cfg.Timeout = 50 * time.Millisecond
		cfg.MaxRetries = 1
	})
	sim.SetLatency(time.Hour)
	began := time.Now()
	_, err := c.ListSites(context.Background(), corp)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	waitCalls(t, sim, sigscisim.EndpointListSites, 2, "two attempts at the simulator")
	if n := sim.Calls(sigscisim.EndpointListSites); n != 2 {
		t.Errorf("%d attempts at the simulator, want 2", n)
	}
}

func TestCallerDeadlineStopsTheCall(t *testing.T) {
	sim, c := simClient(t, seed())
	sim.SetLatency(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.PrimaryKeys(ctx, corp, "www")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if ctx.Err() == nil {
		t.Error("returned before the caller's deadline")
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	answered := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"message":"boom"}`)
		w.(http.Flusher).Flush()
		answered <- struct{}{}
	}))
	defer srv.Close()
	cfg := fastConfig(srv.URL)
	cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour
	c := newClient(t, cfg)
	go func() {
		<-answered
		cancel()
	}()
	// Without cancellation the client would now wait about an hour.
	_, err := c.ListSites(ctx, corp)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want canceled", err)
	}
}

func TestPaginationWithTotalCount(t *testing.T) {
	for _, n := range []int{0, 1, 99, 100, 101, 200, 250} {
		names := make([]string, n)
		for i := range names {
			names[i] = fmt.Sprintf("site-%03d", i)
		}
		s := seed()
		s.Corps[0].Sites = nil
		for _, name := range names {
			s.Corps[0].Sites = append(s.Corps[0].Sites, sigscisim.SiteSeed{Name: name})
		}
		sim, c := simClient(t, s)
		sites, err := c.ListSites(context.Background(), corp)
		if err != nil {
			t.Fatal(err)
		}
		if len(sites) != n || (n > 0 && sites[n-1].Name != names[n-1]) {
			t.Errorf("%d sites: got %d", n, len(sites))
		}
		wantCalls := max(1, (n+99)/100) // totalCount ends the list without an extra empty page
		if got := sim.Calls(sigscisim.EndpointListSites); got != wantCalls {
			t.Errorf("%d sites: %d calls, want %d", n, got, wantCalls)
		}
	}
}

// pagedSites serves n sites, pageSize per page (ignoring a larger limit),
// with or without totalCount, and records the queries it saw.
func pagedSites(t *testing.T, n, pageSize int, withTotal bool) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
		if r.Header.Get("x-api-token") != token || r.URL.Path != "/corps/"+corp+"/sites" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		size := min(limit, pageSize)
		body := map[string]any{}
		data := []map[string]string{}
		for i := (page - 1) * size; i < n && i < page*size; i++ {
			data = append(data, map[string]string{"name": fmt.Sprintf("s%d", i), "created": ""})
		}
		body["data"] = data
		if withTotal {
			body["totalCount"] = n
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return srv, &queries
}

func TestPaginationWithoutTotalCount(t *testing.T) {
	cases := []struct{ n, wantCalls int }{{0, 1}, {5, 1}, {100, 2}, {200, 3}, {250, 3}}
	for _, tc := range cases {
		srv, queries := pagedSites(t, tc.n, 100, false)
		c := newClient(t, fastConfig(srv.URL))
		sites, err := c.ListSites(context.Background(), corp)
		if err != nil {
			t.Fatal(err)
		}
		if len(sites) != tc.n {
			t.Errorf("%d sites: got %d", tc.n, len(sites))
		}
		if len(*queries) != tc.wantCalls {
			t.Errorf("%d sites: %d calls %v, want %d", tc.n, len(*queries), *queries, tc.wantCalls)
		}
		for i, q := range *queries {
			if want := fmt.Sprintf("limit=100&page=%d", i+1); q != want {
				t.Errorf("query %d = %q, want %q", i, q, want)
			}
		}
	}
}

func TestPaginationFollowsTotalCountPastShortPages(t *testing.T) {
	srv, queries := pagedSites(t, 130, 40, true)
	c := newClient(t, fastConfig(srv.URL))
	sites, err := c.ListSites(context.Background(), corp)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 130 || len(*queries) != 4 {
		t.Errorf("got %d sites in %d calls, want 130 in 4", len(sites), len(*queries))
	}
}

func TestPaginationGivesUpOnEndlessPages(t *testing.T) {
	srv, queries := pagedSites(t, 1<<30, 100, false)
	c := newClient(t, fastConfig(srv.URL))
	_, err := c.ListSites(context.Background(), corp)
	if err == nil || !strings.Contains(err.Error(), "still more pages") {
		t.Fatalf("err = %v", err)
	}
	if len(*queries) != 1000 {
		t.Errorf("%d calls, want 1000", len(*queries))
	}
}

func TestErrorsCarryStatusAndMessageButNotTheToken(t *testing.T) {
	_, srv := startSim(t, seed())
	cases := []struct {
		name   string
		cfg    sigsci.Config
		call   func(*sigsci.Client) error
		status int
		msg    string
	}{
		{"bad token", sigsci.Config{Token: token + "-wrong"}, func(c *sigsci.Client) error { _, err := c.ListSites(context.Background(), corp); return err },
			401, "invalid API user or token"},
		{"other corp", sigsci.Config{}, func(c *sigsci.Client) error { _, err := c.ListSites(context.Background(), "globex"); return err },
			403, "the API user has no access to this corp"},
		{"unknown site", sigsci.Config{}, func(c *sigsci.Client) error { _, err := c.PrimaryKeys(context.Background(), corp, "nope"); return err },
			404, "site not found"},
	}
	for _, tc := range cases {
		cfg := fastConfig(srv.URL + sigscisim.APIPrefix)
		if tc.cfg.Token != "" {
			cfg.Token = tc.cfg.Token
		}
		err := tc.call(newClient(t, cfg))
		var apiErr *sigsci.APIError
		if !errors.As(err, &apiErr) || apiErr.StatusCode != tc.status || apiErr.Message != tc.msg {
			t.Errorf("%s: err = %#v", tc.name, err)
			continue
		}
		text := err.Error()
		if !strings.Contains(text, strconv.Itoa(tc.status)) || !strings.Contains(text, tc.msg) {
			t.Errorf("%s: %q lacks status or message", tc.name, text)
		}
		for _, form := range []string{text, fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
			if strings.Contains(form, "tok-9f8e7d6c5b4a") || strings.Contains(form, cfg.Token) {
				t.Errorf("%s: error shows the token: %s", tc.name, form)
			}
		}
	}
}

func TestErrorBodyThatIsNotJSONIsNotReflected(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadGateway)
		fmt.Fprintf(w, "<html>proxy error for request with x-api-token: %s\n</html>", r.Header.Get("x-api-token"))
	}))
	defer srv.Close()
	cfg := fastConfig(srv.URL)
	cfg.MaxRetries = -1
	_, err := newClient(t, cfg).ListSites(context.Background(), corp)
	var apiErr *sigsci.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway || apiErr.Message != "" {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), "no JSON message: text/html, ") {
		t.Errorf("the error does not say what the answer was: %v", err)
	}
	for _, leak := range []string{"proxy error", "<html>", token} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("the error reflects the body (%q): %v", leak, err)
		}
	}
}

func TestErrorCarriesOnlyTheAPIMessage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"message":"token %s\nis not allowed %s","trace":"internal-trace-7f3a","request":{"x-api-token":%q}}`,
			r.Header.Get("x-api-token"), strings.Repeat("x", 400), r.Header.Get("x-api-token"))
	}))
	defer srv.Close()
	_, err := newClient(t, fastConfig(srv.URL)).ListSites(context.Background(), corp)
	var apiErr *sigsci.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || !strings.HasPrefix(apiErr.Message, "token [redacted] is not allowed xxx") {
		t.Fatalf("err = %v", err)
	}
	if n := len([]rune(apiErr.Message)); n > 301 || !strings.HasSuffix(apiErr.Message, "…") {
		t.Errorf("message of %d runes, want it shortened to 300 and marked: %q", n, apiErr.Message)
	}
	for _, leak := range []string{"internal-trace", token, "\n"} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("the error carries %q: %v", leak, err)
		}
	}
	// A JSON body without a message says only what it was.
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":"internal-trace-7f3a"}`)
	}))
	defer srv2.Close()
	_, err = newClient(t, fastConfig(srv2.URL)).ListSites(context.Background(), corp)
	if err == nil || strings.Contains(err.Error(), "internal-trace") || !strings.Contains(err.Error(), "no JSON message: application/json, 31 bytes") {
		t.Errorf("err = %v", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var leaked atomic.Int32
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { leaked.Add(1) }))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.RedirectHandler(elsewhere.URL+"/steal", http.StatusFound))
	defer srv.Close()
	_, err := newClient(t, fastConfig(srv.URL)).ListSites(context.Background(), corp)
	if sigsci.StatusCode(err) != http.StatusFound {
		t.Fatalf("err = %v", err)
	}
	if leaked.Load() != 0 {
		t.Error("the client followed the redirect with its token")
	}
}

func TestCreateIsNotRepeatedAfterALostAnswer(t *testing.T) {
	sim, c := simClient(t, seed())
	before := sim.KeySets(corp, "www")
	sim.DropNextAfterHandling(1)
	_, err := c.CreateKeySet(context.Background(), corp, "www")
	if !errors.Is(err, sigsci.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want ErrOutcomeUnknown", err)
	}
	if got := sim.Calls(sigscisim.EndpointCreateKeySet); got != 1 {
		t.Errorf("POST sent %d times, want once", got)
	}
	after := sim.KeySets(corp, "www")
	if len(after) != len(before)+1 {
		t.Fatalf("sets: %d before, %d after", len(before), len(after))
	}
	// The caller reconciles by listing: the new primary is there.
	sets, err := c.ListKeySets(context.Background(), corp, "www")
	if err != nil || len(sets) != 2 || !sets[1].Primary || sets[1].AccessKey == before[0].AccessKey {
		t.Errorf("reconcile list = %v, %v", sets, err)
	}
}

func TestCreateIsNotRepeatedAfter5xxOrTimeout(t *testing.T) {
	sim, c := simClient(t, seed(), func(cfg *sigsci.Config) { cfg.Timeout = 100 * time.Millisecond })
	sim.FailNext(1, http.StatusServiceUnavailable)
	_, err := c.CreateKeySet(context.Background(), corp, "www")
	if !errors.Is(err, sigsci.ErrOutcomeUnknown) || sigsci.StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("503: err = %v", err)
	}
	sim.SetLatency(time.Hour)
	_, err = c.CreateKeySet(context.Background(), corp, "www")
	if !errors.Is(err, sigsci.ErrOutcomeUnknown) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: err = %v", err)
	}
	waitCalls(t, sim, sigscisim.EndpointCreateKeySet, 2, "the second POST to arrive")
	sim.SetLatency(0)
	if got := sim.Calls(sigscisim.EndpointCreateKeySet); got != 2 {
		t.Errorf("POST sent %d times, want 2 (one per CreateKeySet)", got)
	}
}

func TestCreateIsRetriedOn429(t *testing.T) {
	sim, c := simClient(t, seed())
	sim.FailNext(2, http.StatusTooManyRequests)
	created, err := c.CreateKeySet(context.Background(), corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	sets := sim.KeySets(corp, "www")
	if len(sets) != 2 || sets[1].AccessKey != created.AccessKey {
		t.Errorf("sets = %v, created %v", sets, created)
	}
	if got := sim.Calls(sigscisim.EndpointCreateKeySet); got != 3 {
		t.Errorf("calls = %d, want 3", got)
	}
}

func TestCreateIsRetriedWhenTheRequestWasNeverSent(t *testing.T) {
	sim, srv := startSim(t, seed())
	var dials atomic.Int32
	dialer := &net.Dialer{}
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) <= 2 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused (simulated)")}
		}
		return dialer.DialContext(ctx, network, addr)
	}}
	cfg := fastConfig(srv.URL + sigscisim.APIPrefix)
	cfg.HTTPClient = &http.Client{Transport: transport}
	c := newClient(t, cfg)
	created, err := c.CreateKeySet(context.Background(), corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	if got := sim.Calls(sigscisim.EndpointCreateKeySet); got != 1 {
		t.Errorf("POST arrived %d times, want once", got)
	}
	if sets := sim.KeySets(corp, "www"); len(sets) != 2 || sets[1].AccessKey != created.AccessKey {
		t.Errorf("sets = %v", sets)
	}
	if dials.Load() != 3 {
		t.Errorf("dials = %d, want 3", dials.Load())
	}
}

func TestCreateWithoutTheSetInTheAnswerTakesTheNewPrimary(t *testing.T) {
	sim := sigscisim.New(seed())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, r)
			w.WriteHeader(rec.Code) // the answer without its body
			return
		}
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := newClient(t, fastConfig(srv.URL+sigscisim.APIPrefix))
	created, err := c.CreateKeySet(context.Background(), corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	sets := sim.KeySets(corp, "www")
	if len(sets) != 2 || created != sets[1] || !created.Primary {
		t.Errorf("created %v, simulator has %v", created, sets)
	}
	if got := sim.Calls(sigscisim.EndpointListKeySets); got != 1 {
		t.Errorf("list calls = %d, want 1", got)
	}
}

func TestInvalidInputIsRefusedBeforeAnyCall(t *testing.T) {
	sim, c := simClient(t, seed())
	ctx := context.Background()
	calls := []struct {
		name string
		run  func() error
		want string
	}{
		{"corp", func() error { _, err := c.ListSites(ctx, "Acme Corp"); return err }, `invalid corp name "Acme Corp"`},
		{"site", func() error { _, err := c.PrimaryKeys(ctx, corp, "../x"); return err }, `invalid site name "../x"`},
		{"dotdot", func() error { _, err := c.ListKeySets(ctx, corp, ".."); return err }, `invalid site name ".."`},
		{"empty", func() error { _, err := c.CreateKeySet(ctx, "", "www"); return err }, `invalid corp name ""`},
		{"key", func() error { return c.DeleteKeySet(ctx, corp, "www", "") }, "access key is empty"},
		{"dot key", func() error { return c.DeleteKeySet(ctx, corp, "www", "..") }, "invalid access key"},
	}
	for _, tc := range calls {
		if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if n := len(sim.CallCounts()); n != 0 {
		t.Errorf("invalid input reached the API: %v", sim.CallCounts())
	}
	// An access key with a slash stays one path segment.
	err := c.DeleteKeySet(ctx, corp, "www", "a/b")
	if !sigsci.IsNotFound(err) || !strings.Contains(err.Error(), "agent key not found") {
		t.Errorf("slash in key: %v", err)
	}
	if got := sim.Calls(sigscisim.EndpointDeleteKeySet); got != 1 {
		t.Errorf("slash in key hit %v", sim.CallCounts())
	}
}

func TestConcurrentCalls(t *testing.T) {
	sites := make([]string, 12)
	for i := range sites {
		sites[i] = fmt.Sprintf("s%d", i)
	}
	sim, c := simClient(t, seed(sites...))
	sim.SetRateLimit(50)
	var wg sync.WaitGroup
	errs := make(chan error, len(sites))
	for _, s := range sites {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			old, err := c.PrimaryKeys(ctx, corp, s)
			if err == nil {
				_, err = c.CreateKeySet(ctx, corp, s)
			}
			if err == nil {
				err = c.DeleteKeySet(ctx, corp, s, old.AccessKey)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for _, s := range sites {
		if sets := sim.KeySets(corp, s); len(sets) != 1 || !sets[0].Primary {
			t.Errorf("%s: %v", s, sets)
		}
	}
}

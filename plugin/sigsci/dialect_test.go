package sigsci_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"

	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// dialectClient serves a simulator in dialect d and returns a client that
// logs into the returned sink.
func dialectClient(t *testing.T, s sigscisim.Seed, d sigscisim.Dialect) (*sigscisim.Server, *sigsci.Client, *logbuf.Buffer) {
	t.Helper()
	logs := &logbuf.Buffer{}
	s.Dialect = d
	sim, c := simClient(t, s, func(cfg *sigsci.Config) {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn})
	})
	return sim, c, logs
}

func TestListKeySetsUnderEveryDialect(t *testing.T) {
	for _, d := range sigscisim.Dialects() {
		sim, c, logs := dialectClient(t, seed(), d.Dialect)
		ctx := context.Background()
		created, err := c.CreateKeySet(ctx, corp, "www")
		if err != nil {
			t.Fatalf("%s: create: %v", d.Name, err)
		}
		truth := sim.KeySets(corp, "www")
		if len(truth) != 2 || created != truth[1] {
			t.Errorf("%s: created %v, the API has %v", d.Name, created, truth)
		}
		sets, err := c.ListKeySets(ctx, corp, "www")
		if err != nil {
			t.Fatalf("%s: list: %v", d.Name, err)
		}
		if len(sets) != 2 || sets[0] != truth[0] || sets[1] != truth[1] || sets[0].Primary || !sets[1].Primary {
			t.Errorf("%s: listed %v, the API has %v", d.Name, sets, truth)
		}
		if sets[0].Created.IsZero() || sets[1].Created.IsZero() {
			t.Errorf("%s: the created times were not read: %v", d.Name, sets)
		}
		if logs.String() != "" {
			t.Errorf("%s: warnings: %s", d.Name, logs.String())
		}
	}
}

// flagLiar answers the agentKeys list with every primary flag inverted.
func flagLiar(sim *sigscisim.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/agentKeys") {
			sim.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		body := strings.NewReplacer(`"primary":true`, `"primary":false`, `"primary":false`, `"primary":true`).Replace(rec.Body.String())
		w.WriteHeader(rec.Code)
		fmt.Fprint(w, body)
	})
}

func TestListKeySetsTrustsKeysOverTheListFlag(t *testing.T) {
	sim := sigscisim.New(seed())
	srv := httptest.NewServer(flagLiar(sim))
	defer srv.Close()
	logs := &logbuf.Buffer{}
	cfg := fastConfig(srv.URL + sigscisim.APIPrefix)
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn})
	c := newClient(t, cfg)
	created, err := c.CreateKeySet(context.Background(), corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	sets, err := c.ListKeySets(context.Background(), corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	if len(sets) != 2 || sets[0].Primary || !sets[1].Primary || sets[1].AccessKey != created.AccessKey {
		t.Fatalf("sets = %v: the list's flag was trusted over GET /keys", sets)
	}
	if got := logs.String(); !strings.Contains(got, "disagrees") || !strings.Contains(got, created.AccessKey) {
		t.Errorf("no warning naming the disagreement: %q", got)
	}
	for _, secret := range sim.Secrets() {
		if strings.Contains(logs.String(), secret) {
			t.Error("a secret appears in the warning")
		}
	}
}

func TestRateLimit400IsRetriedLike429(t *testing.T) {
	for _, noRetryAfter := range []bool{false, true} {
		sim, c, _ := dialectClient(t, seed(), sigscisim.Dialect{RateLimitStatus: http.StatusBadRequest, NoRetryAfter: noRetryAfter})
		sim.SetRetryAfter(3)
		waits := recordSleeps(c)
		sim.FailNext(2, http.StatusTooManyRequests)
		if _, err := c.ListSites(context.Background(), corp); err != nil {
			t.Fatalf("Retry-After omitted %t: %v", noRetryAfter, err)
		}
		if len(*waits) != 2 {
			t.Fatalf("Retry-After omitted %t: waits %v, want 2", noRetryAfter, *waits)
		}
		for i, w := range *waits {
			if !noRetryAfter && w != 3*time.Second || noRetryAfter && w > 10*time.Microsecond {
				t.Errorf("Retry-After omitted %t: wait %d = %s, want the Retry-After or else the client's backoff", noRetryAfter, i, w)
			}
		}
		if got := sim.Calls(sigscisim.EndpointListSites); got != 3 {
			t.Errorf("Retry-After omitted %t: %d calls, want 3", noRetryAfter, got)
		}
	}
}

func TestCreateIsRetriedOnRateLimit400(t *testing.T) {
	sim, c, _ := dialectClient(t, seed(), sigscisim.Dialect{RateLimitStatus: http.StatusBadRequest})
	sim.FailNext(2, http.StatusTooManyRequests)
	created, err := c.CreateKeySet(context.Background(), corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	if sets := sim.KeySets(corp, "www"); len(sets) != 2 || sets[1].AccessKey != created.AccessKey {
		t.Errorf("sets = %v, created %v", sets, created)
	}
	if got := sim.Calls(sigscisim.EndpointCreateKeySet); got != 3 {
		t.Errorf("POST calls = %d, want 3", got)
	}
}

func TestAnOrdinary400IsNeitherRetriedNorRateLimited(t *testing.T) {
	sim, c, _ := dialectClient(t, seed(), sigscisim.Dialect{RateLimitStatus: http.StatusBadRequest})
	created, err := c.CreateKeySet(context.Background(), corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	err = c.DeleteKeySet(context.Background(), corp, "www", created.AccessKey)
	if sigsci.StatusCode(err) != http.StatusBadRequest || sigsci.IsRateLimited(err) {
		t.Fatalf("deleting the primary: %v", err)
	}
	if got := sim.Calls(sigscisim.EndpointDeleteKeySet); got != 1 {
		t.Errorf("DELETE calls = %d, want 1", got)
	}
	sim.FailNext(10, http.StatusTooManyRequests)
	if _, err := c.ListSites(context.Background(), corp); !sigsci.IsRateLimited(err) || sigsci.StatusCode(err) != http.StatusBadRequest {
		t.Errorf("after the retries: %v, want a rate-limited 400", err)
	}
}

func TestSitesOfAnAPIThatIgnoresPage(t *testing.T) {
	names := make([]string, 150)
	for i := range names {
		names[i] = fmt.Sprintf("site-%03d", i)
	}
	sim, c, logs := dialectClient(t, seed(names...), sigscisim.Dialect{SitesIgnorePage: true})
	sites, err := c.ListSites(context.Background(), corp)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range sites {
		if seen[s.Name] {
			t.Fatalf("site %s listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	if len(sites) != 100 || sim.Calls(sigscisim.EndpointListSites) != 2 {
		t.Errorf("%d sites in %d calls, want the first page's 100 in 2", len(sites), sim.Calls(sigscisim.EndpointListSites))
	}
	if got := logs.String(); !strings.Contains(got, "ignores page") || !strings.Contains(got, "listed=100") || !strings.Contains(got, "total_count=150") {
		t.Errorf("warning = %q", got)
	}
}

// aSetAppearsAfterTheFirstList has another client create a key set right
// after the first agentKeys list is answered, before GET /keys is read. With
// stale, later lists still show only the sets of the first one.
func aSetAppearsAfterTheFirstList(sim *sigscisim.Server, stale bool) http.Handler {
	var mu sync.Mutex
	var first []byte
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/agentKeys") {
			sim.ServeHTTP(w, r)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if first != nil && stale {
			_, _ = w.Write(first)
			return
		}
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		if first == nil {
			first = rec.Body.Bytes()
			post := httptest.NewRequest(http.MethodPost, r.URL.Path, nil)
			post.Header = r.Header.Clone()
			sim.ServeHTTP(httptest.NewRecorder(), post)
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

func TestListKeySetsListsAgainWhenThePrimaryIsNewerThanTheList(t *testing.T) {
	sim := sigscisim.New(seed())
	srv := httptest.NewServer(aSetAppearsAfterTheFirstList(sim, false))
	defer srv.Close()
	sets, err := newClient(t, fastConfig(srv.URL+sigscisim.APIPrefix)).ListKeySets(context.Background(), corp, "www")
	if err != nil {
		t.Fatal(err)
	}
	truth := sim.KeySets(corp, "www")
	if len(sets) != 2 || sets[0] != truth[0] || sets[1] != truth[1] || !sets[1].Primary {
		t.Errorf("listed %v, the API has %v", sets, truth)
	}
	if got := sim.Calls(sigscisim.EndpointListKeySets); got != 2 {
		t.Errorf("%d list calls, want 2", got)
	}
}

func TestListKeySetsRefusesAListWithoutThePrimary(t *testing.T) {
	sim := sigscisim.New(seed())
	srv := httptest.NewServer(aSetAppearsAfterTheFirstList(sim, true))
	defer srv.Close()
	_, err := newClient(t, fastConfig(srv.URL+sigscisim.APIPrefix)).ListKeySets(context.Background(), corp, "www")
	if err == nil || !strings.Contains(err.Error(), "does not list the primary key set") {
		t.Fatalf("err = %v", err)
	}
}

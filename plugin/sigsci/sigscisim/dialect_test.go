package sigscisim

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// listItem returns the first agentKeys item of www, as raw JSON fields.
func (f *fixture) listItem() map[string]json.RawMessage {
	f.t.Helper()
	status, _, body := f.call(http.MethodGet, "/corps/acme/sites/www/agentKeys", userA, tokenA)
	list := decode[struct {
		Data []map[string]json.RawMessage `json:"data"`
	}](f.t, body)
	if status != http.StatusOK || len(list.Data) == 0 {
		f.t.Fatalf("agentKeys: %d %s", status, body)
	}
	return list.Data[0]
}

func TestDialectNamesTheFlagAndTheCreatedTime(t *testing.T) {
	f := start(t, testSeed())
	for _, tc := range []struct {
		d            Dialect
		flag, create string
	}{
		{Dialect{}, "primary", "created"},
		{Dialect{PrimaryFlag: FlagIsPrimary, CreatedName: CreatedCamel}, "isPrimary", "createdAt"},
		{Dialect{PrimaryFlag: FlagIsPrimarySnake, CreatedName: CreatedSnake}, "is_primary", "created_at"},
		{Dialect{PrimaryFlag: FlagNone}, "", "created"},
	} {
		if err := f.sim.SetDialect(tc.d); err != nil {
			t.Fatal(err)
		}
		item := f.listItem()
		names := slices.Sorted(maps.Keys(item))
		want := []string{"accessKey", tc.create, "secretKey"}
		if tc.flag != "" {
			want = append(want, tc.flag)
		}
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("%+v: item fields %v, want %v", tc.d, names, want)
		}
		if tc.flag != "" && string(item[tc.flag]) != "true" {
			t.Errorf("%+v: the only set is not flagged primary: %s", tc.d, item[tc.flag])
		}
	}
}

func TestDialectShapesTheCreateAnswer(t *testing.T) {
	f := start(t, testSeed())
	for _, tc := range []struct {
		answer string
		status int
		body   func(b []byte) bool
	}{
		{"", http.StatusCreated, func(b []byte) bool { return decode[map[string]any](t, b)["accessKey"] != nil }},
		{CreateSet200, http.StatusOK, func(b []byte) bool { return decode[map[string]any](t, b)["accessKey"] != nil }},
		{CreateWrapped201, http.StatusCreated, func(b []byte) bool {
			m := decode[map[string]map[string]any](t, b)
			return len(m) == 1 && m["data"]["accessKey"] != nil && m["data"]["secretKey"] != nil
		}},
		{CreateEmpty200, http.StatusOK, func(b []byte) bool { return strings.TrimSpace(string(b)) == "{}" }},
		{CreateNoBody204, http.StatusNoContent, func(b []byte) bool { return len(b) == 0 }},
	} {
		if err := f.sim.SetDialect(Dialect{CreateAnswer: tc.answer}); err != nil {
			t.Fatal(err)
		}
		before := len(f.sim.KeySets(corpA, "www"))
		status, _, body := f.call(http.MethodPost, "/corps/acme/sites/www/agentKeys", userA, tokenA)
		if status != tc.status || !tc.body(body) {
			t.Errorf("create answer %q: %d %s", tc.answer, status, body)
		}
		sets := f.sim.KeySets(corpA, "www")
		if len(sets) != before+1 || !sets[len(sets)-1].Primary {
			t.Errorf("create answer %q: the new set is not the primary: %v", tc.answer, sets)
		}
	}
}

func TestDialectShapesRateLimiting(t *testing.T) {
	f := start(t, testSeed())
	f.sim.SetRetryAfter(4)
	for _, tc := range []struct {
		d          Dialect
		status     int
		retryAfter string
	}{
		{Dialect{}, http.StatusTooManyRequests, "4"},
		{Dialect{NoRetryAfter: true}, http.StatusTooManyRequests, ""},
		{Dialect{RateLimitStatus: http.StatusBadRequest}, http.StatusBadRequest, "4"},
		{Dialect{RateLimitStatus: http.StatusBadRequest, NoRetryAfter: true}, http.StatusBadRequest, ""},
	} {
		if err := f.sim.SetDialect(tc.d); err != nil {
			t.Fatal(err)
		}
		f.sim.FailNext(1, http.StatusTooManyRequests)
		status, h, body := f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA)
		if status != tc.status || h.Get("Retry-After") != tc.retryAfter {
			t.Errorf("%+v: %d Retry-After %q", tc.d, status, h.Get("Retry-After"))
		}
		limited := strings.Contains(messageOf(t, body), "Rate limit exceeded")
		if limited != (tc.status == http.StatusBadRequest) {
			t.Errorf("%+v: message %s", tc.d, body)
		}
		// The per-second limit answers in the same shape.
		f.sim.SetRateLimit(1)
		f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA)
		if status, _, _ := f.call(http.MethodGet, "/corps/acme/sites", userA, tokenA); status != tc.status {
			t.Errorf("%+v: per-second limit answered %d", tc.d, status)
		}
		f.sim.SetRateLimit(0)
	}
}

func TestDialectSitesIgnorePage(t *testing.T) {
	seed := testSeed()
	for _, name := range []string{"a", "b", "c"} {
		seed.Corps[0].Sites = append(seed.Corps[0].Sites, SiteSeed{Name: name})
	}
	seed.Dialect = Dialect{SitesIgnorePage: true}
	f := start(t, seed)
	names := func(page string) []string {
		_, _, body := f.call(http.MethodGet, "/corps/acme/sites?limit=2&page="+page, userA, tokenA)
		var out []string
		for _, s := range decode[simSiteList](t, body).Data {
			out = append(out, s.Name)
		}
		return out
	}
	if p1, p2 := names("1"), names("2"); !slices.Equal(p1, []string{"www", "api"}) || !slices.Equal(p1, p2) {
		t.Errorf("page 1 %v, page 2 %v: want the first page twice", p1, p2)
	}
}

func TestDialectShapesTheDeleteAnswer(t *testing.T) {
	f := start(t, testSeed())
	oldOf := func() string {
		f.call(http.MethodPost, "/corps/acme/sites/www/agentKeys", userA, tokenA)
		return f.sim.KeySets(corpA, "www")[0].AccessKey
	}
	if err := f.sim.SetDialect(Dialect{DeleteAnswer: DeleteOK200}); err != nil {
		t.Fatal(err)
	}
	old := oldOf()
	if status, _, body := f.call(http.MethodDelete, "/corps/acme/sites/www/agentKeys/"+old, userA, tokenA); status != http.StatusOK || strings.TrimSpace(string(body)) != "{}" {
		t.Errorf("delete 200: %d %s", status, body)
	}
	if _, ok := f.sim.RetiredAt(old); !ok {
		t.Error("delete 200 did not retire the set")
	}
	if err := f.sim.SetDialect(Dialect{DeleteAnswer: DeleteWrongRoute404}); err != nil {
		t.Fatal(err)
	}
	old = oldOf()
	if status, _, _ := f.call(http.MethodDelete, "/corps/acme/sites/www/agentKeys/"+old, userA, tokenA); status != http.StatusNotFound {
		t.Errorf("wrong route: %d", status)
	}
	if _, ok := f.sim.RetiredAt(old); ok || len(f.sim.KeySets(corpA, "www")) != 2 {
		t.Error("the wrong route retired a set")
	}
}

func TestDialectControlSeedAndValidation(t *testing.T) {
	f := start(t, testSeed())
	status, body := f.control(http.MethodPut, "/sim/dialect", `{"primaryFlag":"is_primary","rateLimitStatus":400,"noRetryAfter":true}`)
	if status != http.StatusOK || (f.sim.Dialect() != Dialect{PrimaryFlag: FlagIsPrimarySnake, RateLimitStatus: 400, NoRetryAfter: true}) {
		t.Fatalf("PUT /sim/dialect: %d %s", status, body)
	}
	if status, body := f.control(http.MethodGet, "/sim/dialect", ""); status != http.StatusOK || !strings.Contains(string(body), `"primaryFlag":"is_primary"`) {
		t.Errorf("GET /sim/dialect: %d %s", status, body)
	}
	for _, bad := range []string{`{"primaryFlag":"main"}`, `{"createAnswer":"maybe"}`, `{"rateLimitStatus":503}`, `{"deleteAnswer":"x"}`, `{"other":1}`} {
		if status, body := f.control(http.MethodPut, "/sim/dialect", bad); status != http.StatusBadRequest || messageOf(t, body) == "" {
			t.Errorf("PUT /sim/dialect %s: %d %s", bad, status, body)
		}
	}
	if err := (Seed{Dialect: Dialect{CreatedName: "when"}}).Validate(); err == nil {
		t.Error("a seed with an invalid dialect was accepted")
	}
	for _, d := range Dialects() {
		if err := d.validate(); err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
	}
}

func TestFailNextOnOneEndpoint(t *testing.T) {
	f := start(t, testSeed())
	if status, body := f.control(http.MethodPost, "/sim/fail", `{"n":1,"status":500,"endpoint":"`+EndpointCreateKeySet+`"}`); status != http.StatusOK {
		t.Fatalf("POST /sim/fail: %d %s", status, body)
	}
	if status, _, _ := f.call(http.MethodGet, "/corps/acme/sites/www/agentKeys", userA, tokenA); status != http.StatusOK {
		t.Errorf("another endpoint failed: %d", status)
	}
	if status, _, _ := f.call(http.MethodPost, "/corps/acme/sites/www/agentKeys", userA, tokenA); status != http.StatusInternalServerError {
		t.Errorf("the endpoint did not fail: %d", status)
	}
	if status, _, _ := f.call(http.MethodPost, "/corps/acme/sites/www/agentKeys", userA, tokenA); status != http.StatusCreated {
		t.Errorf("it failed more than once: %d", status)
	}
	if status, _ := f.control(http.MethodPost, "/sim/fail", `{"n":1,"endpoint":"GET /nowhere"}`); status != http.StatusBadRequest {
		t.Errorf("an unknown endpoint was accepted: %d", status)
	}
}

// Package sigscisim simulates the Signal Sciences v0 API as described in the
// project's API design note, for unit tests (through httptest) and for the
// sigsci-sim binary. It owns the simulated corps, users, sites and key sets
// and the injected faults; it must not be used by production code, and it
// encodes the upstream JSON shapes only through the client's wire package
// (adding, where it lists sites, the extra agentLevel field a client must
// ignore).
//
// # API (under APIPrefix, "/api/v0")
//
// Every call needs the headers x-api-user and x-api-token of a seeded user
// (401 otherwise) who belongs to the corp in the path (403 otherwise); an
// unknown corp or site answers 404. Errors are {"message": "..."}.
//
//	GET    /corps/{corp}/sites?page=P&limit=L     {"data":[{name,displayName,created,agentLevel}],"totalCount":N}; limit 1..100, default 100
//	GET    /corps/{corp}/sites/{site}/keys        {"name","accessKey","secretKey"} of the primary set
//	GET    /corps/{corp}/sites/{site}/agentKeys   {"data":[{accessKey,secretKey,primary,created}],"totalCount":N}
//	POST   /corps/{corp}/sites/{site}/agentKeys   201 with the new set, which becomes primary
//	DELETE /corps/{corp}/sites/{site}/agentKeys/{accessKey}  204; 400 for the primary set; 404 unknown
//
// That is the default Dialect. Where the real API's shape is not known, a
// Dialect switches the answers to another candidate shape (see Dialect and
// Dialects): the name of the list's primary flag and creation time, the
// answer of a create or a delete, how rate limiting is signalled, and a
// sites list that ignores page.
//
// Faults apply to API calls only, in this order: latency, the endpoint's
// latency (EndpointLatency), drop before handling, fail-next, rate limit (per user, per second), then the call
// (or, for drop-after-handling, the call followed by a closed connection).
// Every API call is counted per endpoint (the Endpoint* names) on arrival,
// whatever its answer; a request matching no endpoint counts as EndpointUnknown.
//
// # Control endpoints (under /sim/, no authentication; bind to loopback only)
//
//	POST   /sim/agent/check   {"accesskeyid","secretaccesskey"} -> {"live":true,"corp","site","primary"} or {"live":false,"reason"}
//	GET    /sim/state         corps, users (emails), sites, live access keys (primary flag) and retired access keys; no secrets
//	GET    /sim/calls         {"<endpoint>": count, ...};  DELETE /sim/calls resets the counts
//	GET    /sim/faults        the current Faults (remaining fail/drop counts included)
//	PUT    /sim/faults        replace all Faults with the body (absent fields: off)
//	POST   /sim/fail          {"n":2,"status":503,"endpoint":""}  next n API calls (of endpoint, if given) answer status; 429 means rate limited, in the dialect's shape
//	POST   /sim/drop          {"n":1,"afterHandling":false} next n API calls lose their connection
//	POST   /sim/latency       {"latency":"250ms"} every API call; with "endpoint" (and "answerOnly") only that endpoint's, see EndpointLatency
//	POST   /sim/ratelimit     {"perSecond":5,"retryAfter":1}   perSecond 0 turns it off
//	GET    /sim/dialect       the current Dialect
//	PUT    /sim/dialect       replace the Dialect with the body (absent fields: default shape)
//	POST   /sim/sites         {"corp","name","displayName"} adds a site with a fresh primary set (201; 409 if it exists)
//	DELETE /sim/sites/{corp}/{site}  removes a site and its sets (204)
//
// POST /sim/agent/check is counted as EndpointAgentCheck; the other control
// endpoints are not counted. Control answers are JSON; bad input gets 400 with
// {"message"}.
package sigscisim

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// APIPrefix is the path of the API root; a client's BaseURL is the server's
// URL followed by APIPrefix.
const APIPrefix = "/api/v0"

// Endpoint names, as counted by Calls.
const (
	EndpointListSites    = "GET /corps/{corp}/sites"
	EndpointPrimaryKeys  = "GET /corps/{corp}/sites/{site}/keys"
	EndpointListKeySets  = "GET /corps/{corp}/sites/{site}/agentKeys"
	EndpointCreateKeySet = "POST /corps/{corp}/sites/{site}/agentKeys"
	EndpointDeleteKeySet = "DELETE /corps/{corp}/sites/{site}/agentKeys/{accessKey}"
	EndpointAgentCheck   = "POST /sim/agent/check"
	EndpointUnknown      = "unknown"
)

// Server is the simulator. It implements http.Handler and is safe for
// concurrent use.
type Server struct {
	api     *http.ServeMux
	control *http.ServeMux

	mu      sync.Mutex
	now     func() time.Time
	corps   map[string]*corp
	order   []string         // corp names in seed order
	users   map[string]*user // by email
	retired map[string]retiredKey
	calls   map[string]int
	faults  Faults
	dialect Dialect
	window  map[string]rateWindow // per user
	secrets []string              // every API token and secret key ever known
}

type corp struct {
	name  string
	sites []*site
}

type site struct {
	name, displayName string
	created           time.Time
	keys              []*keySet // in creation order
	retired           []string
}

type keySet struct {
	accessKey, secretKey string
	primary              bool
	created              time.Time
}

type user struct {
	tokens map[string]bool
	corps  map[string]bool
}

// retiredKey is where a retired access key belonged and when it was retired.
type retiredKey struct {
	corp, site string
	at         time.Time
}

type rateWindow struct {
	start time.Time
	count int
}

// New builds a simulator from seed. It panics if the seed is invalid (see
// Seed.Validate); LoadSeed validates a seed read from a file.
func New(seed Seed) *Server {
	if err := seed.Validate(); err != nil {
		panic("sigscisim: invalid seed: " + err.Error())
	}
	s := &Server{
		now:     time.Now,
		corps:   map[string]*corp{},
		users:   map[string]*user{},
		retired: map[string]retiredKey{},
		calls:   map[string]int{},
		window:  map[string]rateWindow{},
		faults:  seed.Faults,
		dialect: seed.Dialect,
	}
	for _, c := range seed.Corps {
		s.addCorp(c.Name)
		for _, u := range c.Users {
			s.addUser(c.Name, u)
		}
		for _, site := range c.Sites {
			if err := s.addSite(c.Name, site); err != nil {
				panic("sigscisim: " + err.Error())
			}
		}
	}
	s.api = s.apiMux()
	s.control = s.controlMux()
	return s
}

// ServeHTTP routes API calls (under APIPrefix) and control calls (under /sim/).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, APIPrefix+"/"):
		s.serveAPI(w, r)
	case strings.HasPrefix(r.URL.Path, "/sim/"):
		s.control.ServeHTTP(w, r)
	default:
		writeMessage(w, http.StatusNotFound, "not found: the API is under "+APIPrefix+", the simulator controls under /sim/")
	}
}

// SetClock replaces the clock used for created timestamps and rate-limit windows.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

func (s *Server) addCorp(name string) *corp {
	if c, ok := s.corps[name]; ok {
		return c
	}
	c := &corp{name: name}
	s.corps[name] = c
	s.order = append(s.order, name)
	return c
}

func (s *Server) addUser(corpName string, u UserSeed) {
	usr, ok := s.users[u.Email]
	if !ok {
		usr = &user{tokens: map[string]bool{}, corps: map[string]bool{}}
		s.users[u.Email] = usr
	}
	usr.tokens[u.Token] = true
	usr.corps[corpName] = true
	s.secrets = append(s.secrets, u.Token)
}

// AddUser adds an API user (or another token of an existing user) to a corp,
// creating the corp if needed. It panics on an empty email or token, or an
// invalid corp name.
func (s *Server) AddUser(corpName string, u UserSeed) {
	if !sigsci.ValidName(corpName) || u.Email == "" || u.Token == "" {
		panic(fmt.Sprintf("sigscisim: AddUser(%q): invalid corp name, email or token", corpName))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addCorp(corpName)
	s.addUser(corpName, u)
}

// AddSite adds a site with a fresh primary key set to corp, creating the
// corp if needed; a site that exists already is left as it is. It panics on
// an invalid corp or site name.
func (s *Server) AddSite(corpName string, st SiteSeed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.addSite(corpName, st); err != nil && err != errSiteExists {
		panic("sigscisim: " + err.Error())
	}
}

// RemoveSite deletes a site and its key sets; it reports whether it existed.
func (s *Server) RemoveSite(corpName, siteName string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.corps[corpName]
	if !ok {
		return false
	}
	i := slices.IndexFunc(c.sites, func(st *site) bool { return st.name == siteName })
	if i < 0 {
		return false
	}
	for _, k := range c.sites[i].keys {
		s.retired[k.accessKey] = retiredKey{corpName, siteName, s.now()}
	}
	c.sites = slices.Delete(c.sites, i, i+1)
	return true
}

var errSiteExists = fmt.Errorf("site exists already")

func (s *Server) addSite(corpName string, st SiteSeed) error {
	if !sigsci.ValidName(corpName) {
		return fmt.Errorf("invalid corp name %q", corpName)
	}
	if !sigsci.ValidName(st.Name) {
		return fmt.Errorf("invalid site name %q", st.Name)
	}
	c := s.addCorp(corpName)
	if c.site(st.Name) != nil {
		return errSiteExists
	}
	display := st.DisplayName
	if display == "" {
		display = st.Name
	}
	now := s.now().UTC()
	k := newKeySet(now)
	c.sites = append(c.sites, &site{
		name: st.Name, displayName: display, created: now,
		keys: []*keySet{k},
	})
	s.secrets = append(s.secrets, k.secretKey)
	return nil
}

func (c *corp) site(name string) *site {
	for _, st := range c.sites {
		if st.name == name {
			return st
		}
	}
	return nil
}

func (st *site) primary() *keySet {
	for _, k := range st.keys {
		if k.primary {
			return k
		}
	}
	return nil
}

// KeySets returns the site's live key sets (secrets included), in creation
// order, or nil for an unknown corp or site.
func (s *Server) KeySets(corpName, siteName string) []sigsci.KeySet {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.corps[corpName]
	if !ok {
		return nil
	}
	st := c.site(siteName)
	if st == nil {
		return nil
	}
	out := make([]sigsci.KeySet, 0, len(st.keys))
	for _, k := range st.keys {
		out = append(out, sigsci.KeySet{AccessKey: k.accessKey, SecretKey: k.secretKey, Primary: k.primary, Created: k.created})
	}
	return out
}

// Calls returns how many API calls arrived for endpoint (an Endpoint* name).
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// Secrets returns every secret the simulator has known: each API token and
// the secret key of every key set it created, retired ones included, so a
// test can search outputs and logs for all of them.
func (s *Server) Secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.secrets)
}

// CallCounts returns a copy of all per-endpoint counts.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// ResetCalls sets every count to zero.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
}

func (s *Server) count(endpoint string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[endpoint]++
}

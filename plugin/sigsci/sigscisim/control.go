package sigscisim

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// AgentCheckRequest is the body of POST /sim/agent/check, named as the WAF
// agent names its settings.
type AgentCheckRequest struct {
	AccessKeyID     string `json:"accesskeyid"`
	SecretAccessKey string `json:"secretaccesskey"`
}

// AgentCheckResult answers whether a key pair is a live set of some site.
type AgentCheckResult struct {
	Live    bool   `json:"live"`
	Corp    string `json:"corp,omitempty"`
	Site    string `json:"site,omitempty"`
	Primary bool   `json:"primary,omitempty"`
	// Reason says why a pair is not live: "unknown access key", "retired",
	// "secret does not match".
	Reason string `json:"reason,omitempty"`
}

// State is the simulator's state without secrets, as GET /sim/state shows it.
type State struct {
	Corps []CorpState `json:"corps"`
}

// CorpState is one corp in State.
type CorpState struct {
	Name  string      `json:"name"`
	Users []string    `json:"users"`
	Sites []SiteState `json:"sites"`
}

// SiteState is one site in State: its live sets and retired access keys.
type SiteState struct {
	Name        string     `json:"name"`
	DisplayName string     `json:"displayName"`
	Created     time.Time  `json:"created"`
	Keys        []KeyState `json:"keys"`
	Retired     []string   `json:"retired"`
}

// KeyState is one live key set in State (no secret).
type KeyState struct {
	AccessKey string    `json:"accessKey"`
	Primary   bool      `json:"primary"`
	Created   time.Time `json:"created"`
}

// CheckAgentKeys reports whether accessKey/secretKey is a live (not retired)
// key set of some site, as POST /sim/agent/check does.
func (s *Server) CheckAgentKeys(accessKey, secretKey string) AgentCheckResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range s.order {
		for _, st := range s.corps[name].sites {
			for _, k := range st.keys {
				if k.accessKey != accessKey {
					continue
				}
				if subtle.ConstantTimeCompare([]byte(k.secretKey), []byte(secretKey)) != 1 {
					return AgentCheckResult{Reason: "secret does not match"}
				}
				return AgentCheckResult{Live: true, Corp: name, Site: st.name, Primary: k.primary}
			}
		}
	}
	if _, ok := s.retired[accessKey]; ok {
		return AgentCheckResult{Reason: "retired"}
	}
	return AgentCheckResult{Reason: "unknown access key"}
}

// RetiredAt reports when accessKey was retired, by a DELETE or by its
// site's removal; false while it is live or was never a key set.
func (s *Server) RetiredAt(accessKey string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.retired[accessKey]
	return r.at, ok
}

// State returns corps, users, sites and access keys, without secrets.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := State{Corps: []CorpState{}}
	for _, name := range s.order {
		c := s.corps[name]
		cs := CorpState{Name: name, Users: s.usersOf(name), Sites: []SiteState{}}
		for _, st := range c.sites {
			ss := SiteState{Name: st.name, DisplayName: st.displayName, Created: st.created,
				Keys: []KeyState{}, Retired: slices.Clone(st.retired)}
			if ss.Retired == nil {
				ss.Retired = []string{}
			}
			for _, k := range st.keys {
				ss.Keys = append(ss.Keys, KeyState{AccessKey: k.accessKey, Primary: k.primary, Created: k.created})
			}
			cs.Sites = append(cs.Sites, ss)
		}
		out.Corps = append(out.Corps, cs)
	}
	return out
}

// usersOf lists the emails of a corp's users, sorted. Caller holds mu.
func (s *Server) usersOf(corpName string) []string {
	users := []string{}
	for email, u := range s.users {
		if u.corps[corpName] {
			users = append(users, email)
		}
	}
	slices.Sort(users)
	return users
}

func (s *Server) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /sim/agent/check", s.handleAgentCheck)
	mux.HandleFunc("GET /sim/state", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.State()) })
	mux.HandleFunc("GET /sim/calls", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.CallCounts()) })
	mux.HandleFunc("DELETE /sim/calls", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /sim/faults", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Faults()) })
	mux.HandleFunc("PUT /sim/faults", setting(s.SetFaults, s.Faults))
	mux.HandleFunc("POST /sim/fail", setting(s.applyFail, s.Faults))
	mux.HandleFunc("POST /sim/drop", setting(s.applyDrop, s.Faults))
	mux.HandleFunc("POST /sim/latency", setting(s.applyLatency, s.Faults))
	mux.HandleFunc("POST /sim/ratelimit", setting(s.applyRateLimit, s.Faults))
	mux.HandleFunc("GET /sim/dialect", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Dialect()) })
	mux.HandleFunc("PUT /sim/dialect", setting(s.SetDialect, s.Dialect))
	mux.HandleFunc("POST /sim/sites", s.handleAddSite)
	mux.HandleFunc("DELETE /sim/sites/{corp}/{site}", s.handleRemoveSite)
	mux.HandleFunc("/sim/", func(w http.ResponseWriter, r *http.Request) {
		writeMessage(w, http.StatusNotFound, "no such simulator control: "+r.Method+" "+r.URL.Path)
	})
	return mux
}

// decodeBody reads a small JSON body into v, refusing unknown fields, or
// answers 400 and returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeMessage(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func (s *Server) handleAgentCheck(w http.ResponseWriter, r *http.Request) {
	s.count(EndpointAgentCheck)
	var req AgentCheckRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.AccessKeyID == "" || req.SecretAccessKey == "" {
		writeMessage(w, http.StatusBadRequest, "accesskeyid and secretaccesskey are required")
		return
	}
	writeJSON(w, http.StatusOK, s.CheckAgentKeys(req.AccessKeyID, req.SecretAccessKey))
}

// setting is a control that decodes a request body, applies it (or refuses
// it: 400 with the reason) and answers the setting now in force.
func setting[T, A any](apply func(T) error, current func() A) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req T
		if !decodeBody(w, r, &req) {
			return
		}
		if err := apply(req); err != nil {
			writeMessage(w, http.StatusBadRequest, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, current())
	}
}

// failRequest is the body of POST /sim/fail.
type failRequest struct {
	N        int    `json:"n"`
	Status   int    `json:"status"`
	Endpoint string `json:"endpoint"`
}

func (s *Server) applyFail(req failRequest) error {
	if req.N < 0 || req.Status != 0 && (req.Status < 400 || req.Status > 599) {
		return errors.New("n must be >= 0 and status a 4xx or 5xx code (default 503)")
	}
	if req.Endpoint != "" && !slices.Contains(apiEndpoints(), req.Endpoint) {
		return fmt.Errorf("endpoint %q is not one of %q", req.Endpoint, apiEndpoints())
	}
	s.FailNextOn(req.Endpoint, req.N, req.Status)
	return nil
}

// dropRequest is the body of POST /sim/drop.
type dropRequest struct {
	N             int  `json:"n"`
	AfterHandling bool `json:"afterHandling"`
}

func (s *Server) applyDrop(req dropRequest) error {
	if req.N < 0 {
		return errors.New("n must be >= 0")
	}
	if req.AfterHandling {
		s.DropNextAfterHandling(req.N)
	} else {
		s.DropNext(req.N)
	}
	return nil
}

func (s *Server) applyLatency(req EndpointLatency) error {
	switch {
	case req.Latency < 0:
		return errors.New("latency must not be negative")
	case req.Endpoint == "" && req.AnswerOnly:
		return errors.New("answerOnly needs an endpoint")
	case req.Endpoint == "":
		s.SetLatency(time.Duration(req.Latency))
	default:
		if err := req.validate(); err != nil {
			return err
		}
		s.SetEndpointLatency(req.Endpoint, time.Duration(req.Latency), req.AnswerOnly)
	}
	return nil
}

// rateLimitRequest is the body of POST /sim/ratelimit.
type rateLimitRequest struct {
	PerSecond  int  `json:"perSecond"`
	RetryAfter *int `json:"retryAfter"`
}

func (s *Server) applyRateLimit(req rateLimitRequest) error {
	if req.PerSecond < 0 || req.RetryAfter != nil && *req.RetryAfter < 0 {
		return errors.New("perSecond and retryAfter must not be negative")
	}
	s.SetRateLimit(req.PerSecond)
	if req.RetryAfter != nil {
		s.SetRetryAfter(*req.RetryAfter)
	}
	return nil
}

func (s *Server) handleAddSite(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Corp        string `json:"corp"`
		Name        string `json:"name"`
		DisplayName string `json:"displayName"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	s.mu.Lock()
	err := s.addSite(req.Corp, SiteSeed{Name: req.Name, DisplayName: req.DisplayName})
	s.mu.Unlock()
	switch {
	case err == errSiteExists:
		writeMessage(w, http.StatusConflict, fmt.Sprintf("site %q exists already in corp %q", req.Name, req.Corp))
	case err != nil:
		writeMessage(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusCreated, map[string]string{"corp": req.Corp, "name": req.Name})
	}
}

func (s *Server) handleRemoveSite(w http.ResponseWriter, r *http.Request) {
	if !s.RemoveSite(r.PathValue("corp"), r.PathValue("site")) {
		writeMessage(w, http.StatusNotFound, "site not found")
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

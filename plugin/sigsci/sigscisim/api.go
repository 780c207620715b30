package sigscisim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/internal/wire"
)

const maxPageLimit = 100

// apiEndpoints names the API endpoints, as Calls counts them.
func apiEndpoints() []string {
	return []string{EndpointListSites, EndpointPrimaryKeys, EndpointListKeySets, EndpointCreateKeySet, EndpointDeleteKeySet}
}

func (s *Server) apiMux() *http.ServeMux {
	mux := http.NewServeMux()
	routes := map[string]http.HandlerFunc{
		EndpointListSites:    s.listSites,
		EndpointPrimaryKeys:  s.siteHandler(s.primaryKeys),
		EndpointListKeySets:  s.siteHandler(s.listKeySets),
		EndpointCreateKeySet: s.siteHandler(s.createKeySet),
		EndpointDeleteKeySet: s.siteHandler(s.deleteKeySet),
	}
	for endpoint, h := range routes {
		method, path, _ := strings.Cut(endpoint, " ")
		mux.Handle(method+" "+APIPrefix+path, h)
	}
	return mux
}

// endpointOf names the endpoint a request is routed to.
func (s *Server) endpointOf(r *http.Request) string {
	_, pattern := s.api.Handler(r)
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || !strings.HasPrefix(path, APIPrefix) {
		return EndpointUnknown
	}
	return method + " " + strings.TrimPrefix(path, APIPrefix)
}

// serveAPI counts the call, applies the latencies, and handles it.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	endpoint := s.endpointOf(r)
	s.count(endpoint)
	if !s.waitLatency(r) {
		return
	}
	d, answerOnly := s.endpointLatency(endpoint)
	switch {
	case d == 0:
		s.handleAPICall(w, r, endpoint)
	case answerOnly:
		held := &heldAnswer{header: http.Header{}}
		s.handleAPICall(held, r, endpoint)
		held.sendAfter(w, r, d)
	default:
		time.Sleep(d) // the server's own slowness: it works on whatever the client does
		s.handleAPICall(w, r, endpoint)
	}
}

// handleAPICall applies the other faults, authenticates, and handles the call.
func (s *Server) handleAPICall(w http.ResponseWriter, r *http.Request, endpoint string) {
	email := r.Header.Get(wire.HeaderUser)
	kind, status := s.pendingFault(email, endpoint)
	switch {
	case kind == faultDropBefore:
		dropConnection(w)
		return
	case kind == faultRateLimited || kind == faultFail && status == http.StatusTooManyRequests:
		s.writeRateLimited(w)
		return
	case kind == faultFail:
		writeMessage(w, status, "simulated failure: "+http.StatusText(status))
		return
	}
	if endpoint == EndpointUnknown {
		writeMessage(w, http.StatusNotFound, "no such API endpoint: "+r.Method+" "+strings.TrimPrefix(r.URL.Path, APIPrefix))
		return
	}
	if !s.authenticated(email, r.Header.Get(wire.HeaderToken)) {
		writeMessage(w, http.StatusUnauthorized, "invalid API user or token")
		return
	}
	if kind == faultDropAfter {
		s.api.ServeHTTP(&discardWriter{header: http.Header{}}, r)
		dropConnection(w)
		return
	}
	s.api.ServeHTTP(w, r)
}

func (s *Server) authenticated(email, token string) bool {
	if email == "" || token == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[email]
	if !ok {
		return false
	}
	match := 0
	for t := range u.tokens {
		match |= subtle.ConstantTimeCompare([]byte(t), []byte(token))
	}
	return match == 1
}

// lookupSite resolves corp and (if siteName != "") site for the caller, or
// writes the error answer and returns ok=false. Caller holds mu.
func (s *Server) lookupSite(w http.ResponseWriter, r *http.Request, siteName string) (*corp, *site, bool) {
	corpName := r.PathValue("corp")
	c, ok := s.corps[corpName]
	if !ok {
		writeMessage(w, http.StatusNotFound, "corp not found")
		return nil, nil, false
	}
	if u := s.users[r.Header.Get(wire.HeaderUser)]; u == nil || !u.corps[corpName] {
		writeMessage(w, http.StatusForbidden, "the API user has no access to this corp")
		return nil, nil, false
	}
	if siteName == "" {
		return c, nil, true
	}
	st := c.site(siteName)
	if st == nil {
		writeMessage(w, http.StatusNotFound, "site not found")
		return nil, nil, false
	}
	return c, st, true
}

// siteHandler serves an endpoint of one site: it holds mu while h runs and
// hands it the corp and site of the path, once lookupSite has let the
// caller in.
func (s *Server) siteHandler(h func(w http.ResponseWriter, r *http.Request, c *corp, st *site)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		c, st, ok := s.lookupSite(w, r, r.PathValue("site"))
		if !ok {
			return
		}
		h(w, r, c, st)
	}
}

type simSite struct {
	wire.Site
	AgentLevel string `json:"agentLevel"` // an extra field a client must ignore
}

type simSiteList = wire.List[simSite]

func (s *Server) listSites(w http.ResponseWriter, r *http.Request) {
	page, limit, msg := pageParams(r)
	if msg != "" {
		writeMessage(w, http.StatusBadRequest, msg)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, _, ok := s.lookupSite(w, r, "")
	if !ok {
		return
	}
	if s.dialect.SitesIgnorePage {
		page = 1
	}
	total := len(c.sites)
	out := simSiteList{Data: []simSite{}, TotalCount: &total}
	start := (page - 1) * limit
	for i := start; i < len(c.sites) && i < start+limit; i++ {
		st := c.sites[i]
		out.Data = append(out.Data, simSite{
			Site:       wire.Site{Name: st.name, DisplayName: st.displayName, Created: wire.Time{Time: st.created}},
			AgentLevel: "log",
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func pageParams(r *http.Request) (page, limit int, msg string) {
	page, limit = 1, maxPageLimit
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, "page must be a positive integer"
		}
		page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			return 0, 0, "limit must be an integer from 1 to 100"
		}
		limit = n
	}
	if page > 1_000_000 {
		return 0, 0, "page is too large"
	}
	return page, limit, ""
}

func (s *Server) primaryKeys(w http.ResponseWriter, _ *http.Request, _ *corp, st *site) {
	p := st.primary()
	writeJSON(w, http.StatusOK, wire.PrimaryKeys{Name: st.name, AccessKey: p.accessKey, SecretKey: p.secretKey})
}

func (s *Server) listKeySets(w http.ResponseWriter, _ *http.Request, _ *corp, st *site) {
	total := len(st.keys)
	out := wire.KeySetList{Data: make([]wire.KeySet, 0, total), TotalCount: &total}
	for _, k := range st.keys {
		out.Data = append(out.Data, s.dialect.wire(k))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) createKeySet(w http.ResponseWriter, _ *http.Request, _ *corp, st *site) {
	for _, k := range st.keys {
		k.primary = false
	}
	k := newKeySet(s.now().UTC())
	st.keys = append(st.keys, k)
	s.secrets = append(s.secrets, k.secretKey)
	s.dialect.writeCreated(w, k)
}

func (s *Server) deleteKeySet(w http.ResponseWriter, r *http.Request, c *corp, st *site) {
	if s.dialect.DeleteAnswer == DeleteWrongRoute404 {
		writeMessage(w, http.StatusNotFound, "not found")
		return
	}
	accessKey := r.PathValue("accessKey")
	i := slices.IndexFunc(st.keys, func(k *keySet) bool { return k.accessKey == accessKey })
	switch {
	case i < 0:
		writeMessage(w, http.StatusNotFound, "agent key not found")
	case st.keys[i].primary:
		writeMessage(w, http.StatusBadRequest, "the primary agent key cannot be deleted")
	default:
		s.retired[accessKey] = retiredKey{c.name, st.name, s.now()}
		st.retired = append(st.retired, accessKey)
		st.keys = slices.Delete(st.keys, i, i+1)
		s.dialect.writeDeleted(w)
	}
}

// newKeySet makes a primary set with a UUID-like access key and a random
// 256-bit secret.
func newKeySet(now time.Time) *keySet {
	return &keySet{accessKey: newAccessKey(), secretKey: newSecretKey(), primary: true, created: now}
}

func newAccessKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func newSecretKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, wire.Error{Message: msg})
}

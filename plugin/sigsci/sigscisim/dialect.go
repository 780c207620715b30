package sigscisim

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/internal/wire"
)

// Dialect is the shape the simulator answers in where the real API's shape is
// not known (the "Assumed" section and the "New evidence" of the API design
// note). The zero Dialect is the shape the client was first written for; each
// field departs from it in one open question. Set it in the Seed, with
// SetDialect, or with PUT /sim/dialect.
type Dialect struct {
	// PrimaryFlag names the primary flag of the agentKeys list items:
	// FlagPrimary (default), FlagIsPrimary, FlagIsPrimarySnake or FlagNone
	// (the items carry no flag).
	PrimaryFlag string `json:"primaryFlag,omitempty"`
	// CreatedName names the creation time of the agentKeys list items:
	// CreatedPlain (default), CreatedCamel or CreatedSnake.
	CreatedName string `json:"createdName,omitempty"`
	// CreateAnswer is how POST .../agentKeys answers: CreateSet201 (default),
	// CreateSet200, CreateWrapped201, CreateEmpty200 or CreateNoBody204.
	CreateAnswer string `json:"createAnswer,omitempty"`
	// RateLimitStatus is how rate limiting (the per-second limit, and a
	// FailNext with status 429) is answered: 429 (default), or 400 with a
	// message containing "Rate limit exceeded".
	RateLimitStatus int `json:"rateLimitStatus,omitempty"`
	// NoRetryAfter leaves Retry-After out of rate-limited answers.
	NoRetryAfter bool `json:"noRetryAfter,omitempty"`
	// SitesIgnorePage makes GET /corps/{corp}/sites ignore "page": every
	// request gets the first page (limit and totalCount still apply).
	SitesIgnorePage bool `json:"sitesIgnorePage,omitempty"`
	// DeleteAnswer is how DELETE .../agentKeys/{accessKey} answers a
	// retirement: DeleteNoContent204 (default), DeleteOK200 ({} with 200),
	// or DeleteWrongRoute404 (every DELETE answers 404 and retires nothing,
	// as a route the real API does not have would).
	DeleteAnswer string `json:"deleteAnswer,omitempty"`
}

// Values of the Dialect fields; "" is the first of each group.
const (
	FlagPrimary        = "primary"
	FlagIsPrimary      = "isPrimary"
	FlagIsPrimarySnake = "is_primary"
	FlagNone           = "none"

	CreatedPlain = "created"
	CreatedCamel = "createdAt"
	CreatedSnake = "created_at"

	CreateSet201     = "set-201"
	CreateSet200     = "set-200"
	CreateWrapped201 = "wrapped-201"
	CreateEmpty200   = "empty-200"
	CreateNoBody204  = "nobody-204"

	DeleteNoContent204  = "nocontent-204"
	DeleteOK200         = "ok-200"
	DeleteWrongRoute404 = "wrongroute-404"
)

// NamedDialect is a dialect with a name, for test tables.
type NamedDialect struct {
	Name string
	Dialect
}

// Dialects returns the default dialect and one dialect per departure from
// it, so that a test run over all of them meets every open shape.
func Dialects() []NamedDialect {
	return []NamedDialect{
		{"default", Dialect{}},
		{"flag isPrimary", Dialect{PrimaryFlag: FlagIsPrimary}},
		{"flag is_primary", Dialect{PrimaryFlag: FlagIsPrimarySnake}},
		{"no primary flag", Dialect{PrimaryFlag: FlagNone}},
		{"createdAt", Dialect{CreatedName: CreatedCamel}},
		{"created_at", Dialect{CreatedName: CreatedSnake}},
		{"create answers 200 with the set", Dialect{CreateAnswer: CreateSet200}},
		{"create answers 201 with a data wrapper", Dialect{CreateAnswer: CreateWrapped201}},
		{"create answers 200 {}", Dialect{CreateAnswer: CreateEmpty200}},
		{"create answers 204", Dialect{CreateAnswer: CreateNoBody204}},
		{"rate limit 429 without Retry-After", Dialect{NoRetryAfter: true}},
		{"rate limit 400", Dialect{RateLimitStatus: http.StatusBadRequest}},
		{"rate limit 400 without Retry-After", Dialect{RateLimitStatus: http.StatusBadRequest, NoRetryAfter: true}},
		{"sites ignore page", Dialect{SitesIgnorePage: true}},
		{"delete answers 200", Dialect{DeleteAnswer: DeleteOK200}},
		{"delete route answers 404", Dialect{DeleteAnswer: DeleteWrongRoute404}},
	}
}

func (d Dialect) validate() error {
	for _, f := range []struct {
		name, value string
		allowed     []string
	}{
		{"primaryFlag", d.PrimaryFlag, []string{FlagPrimary, FlagIsPrimary, FlagIsPrimarySnake, FlagNone}},
		{"createdName", d.CreatedName, []string{CreatedPlain, CreatedCamel, CreatedSnake}},
		{"createAnswer", d.CreateAnswer, []string{CreateSet201, CreateSet200, CreateWrapped201, CreateEmpty200, CreateNoBody204}},
		{"deleteAnswer", d.DeleteAnswer, []string{DeleteNoContent204, DeleteOK200, DeleteWrongRoute404}},
	} {
		if f.value != "" && !slices.Contains(f.allowed, f.value) {
			return fmt.Errorf("dialect %s %q is not one of %q", f.name, f.value, f.allowed)
		}
	}
	if d.RateLimitStatus != 0 && d.RateLimitStatus != http.StatusTooManyRequests && d.RateLimitStatus != http.StatusBadRequest {
		return fmt.Errorf("dialect rateLimitStatus %d is not 429 or 400", d.RateLimitStatus)
	}
	return nil
}

// SetDialect switches the shape of the answers from the next call on.
// An invalid dialect is refused.
func (s *Server) SetDialect(d Dialect) error {
	if err := d.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dialect = d
	return nil
}

// Dialect returns the current dialect.
func (s *Server) Dialect() Dialect {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialect
}

// wire writes a key set as the dialect names its fields.
func (d Dialect) wire(k *keySet) wire.KeySet {
	out := wire.KeySet{AccessKey: k.accessKey, SecretKey: k.secretKey}
	primary := k.primary
	switch d.PrimaryFlag {
	case FlagIsPrimary:
		out.IsPrimary = &primary
	case FlagIsPrimarySnake:
		out.IsPrimarySnake = &primary
	case FlagNone:
	default:
		out.Primary = &primary
	}
	created := wire.Time{Time: k.created}
	switch d.CreatedName {
	case CreatedCamel:
		out.CreatedAt = created
	case CreatedSnake:
		out.CreatedAtSnake = created
	default:
		out.Created = created
	}
	return out
}

// writeCreated answers a POST that created k.
func (d Dialect) writeCreated(w http.ResponseWriter, k *keySet) {
	set := d.wire(k)
	switch d.CreateAnswer {
	case CreateSet200:
		writeJSON(w, http.StatusOK, set)
	case CreateWrapped201:
		writeJSON(w, http.StatusCreated, wire.CreatedKeySet{Data: &set})
	case CreateEmpty200:
		writeJSON(w, http.StatusOK, struct{}{})
	case CreateNoBody204:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, http.StatusCreated, set)
	}
}

// writeDeleted answers a DELETE that retired a set.
func (d Dialect) writeDeleted(w http.ResponseWriter) {
	if d.DeleteAnswer == DeleteOK200 {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeRateLimited answers a call refused by rate limiting.
func (s *Server) writeRateLimited(w http.ResponseWriter) {
	d := s.Dialect()
	if !d.NoRetryAfter {
		w.Header().Set("Retry-After", s.retryAfter())
	}
	if d.RateLimitStatus == http.StatusBadRequest {
		writeMessage(w, http.StatusBadRequest, wire.RateLimitMessage+"; please retry later")
		return
	}
	writeMessage(w, http.StatusTooManyRequests, "simulated failure: "+http.StatusText(http.StatusTooManyRequests))
}

package sigscisim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// Seed is the simulator's starting state, loadable from JSON:
//
//	{"corps":[{"name":"acme","users":[{"email":"ops@acme.test","token":"t0k"}],
//	           "sites":[{"name":"www","displayName":"WWW"}]}],
//	 "faults":{"latency":"50ms","rateLimit":20},
//	 "dialect":{"primaryFlag":"is_primary"}}
type Seed struct {
	Corps   []CorpSeed `json:"corps"`
	Faults  Faults     `json:"faults"`
	Dialect Dialect    `json:"dialect"`
}

// CorpSeed is one corp with its API users and sites. The same email may be a
// user of several corps; its tokens are pooled.
type CorpSeed struct {
	Name  string     `json:"name"`
	Users []UserSeed `json:"users"`
	Sites []SiteSeed `json:"sites"`
}

// UserSeed is one API user and one of its access tokens.
type UserSeed struct {
	Email string `json:"email"`
	Token string `json:"token"`
}

// SiteSeed is one site; it starts with one random primary key set.
type SiteSeed struct {
	Name        string `json:"name"`
	DisplayName string `json:"displayName"`
}

// Faults are the injected misbehaviours, set in the Seed, with the Set*
// methods, or over HTTP (see the package documentation).
type Faults struct {
	// Latency delays every API call before it is answered.
	Latency Duration `json:"latency"`
	// EndpointLatency makes the calls of one endpoint slow at the server.
	EndpointLatency *EndpointLatency `json:"endpointLatency,omitempty"`
	// RateLimit is the number of API calls each user may make per second;
	// 0 turns rate limiting off. Excess calls get 429 with Retry-After.
	RateLimit int `json:"rateLimit"`
	// RetryAfter is the Retry-After (seconds) sent with every 429; nil means 1.
	RetryAfter *int `json:"retryAfter,omitempty"`
	// FailNext API calls are answered with FailStatus (default 503); a 429
	// is rate limiting, answered in the dialect's shape. With FailEndpoint
	// (an Endpoint* name) only calls of that endpoint fail.
	FailNext     int    `json:"failNext"`
	FailStatus   int    `json:"failStatus"`
	FailEndpoint string `json:"failEndpoint,omitempty"`
	// DropNext API calls have their connection closed before being handled.
	DropNext int `json:"dropNext"`
	// DropNextAfterHandling API calls are carried out (a POST creates its
	// set), then the connection is closed without an answer.
	DropNextAfterHandling int `json:"dropNextAfterHandling"`
}

// EndpointLatency is a server that is slow on one endpoint (after Latency).
type EndpointLatency struct {
	// Endpoint is an Endpoint* name.
	Endpoint string `json:"endpoint"`
	// Latency is how long each call takes at the server. The server carries
	// the call out after it even if the client has gone away meanwhile, as a
	// server finishes a request it received whole.
	Latency Duration `json:"latency"`
	// AnswerOnly carries the call out at once and holds only its answer for
	// Latency, or until the client goes away: a create that lands while its
	// answer is still on the way.
	AnswerOnly bool `json:"answerOnly,omitempty"`
}

func (e *EndpointLatency) validate() error {
	switch {
	case e == nil:
		return nil
	case !slices.Contains(apiEndpoints(), e.Endpoint):
		return fmt.Errorf("endpointLatency.endpoint %q is not one of %q", e.Endpoint, apiEndpoints())
	case e.Latency < 0:
		return errors.New("endpointLatency.latency must not be negative")
	}
	return nil
}

// Duration is a time.Duration written in JSON as a Go duration string ("250ms").
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "250ms".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string ("250ms", "1s") or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("duration must be a string like \"250ms\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// LoadSeed reads and validates a JSON seed file.
func LoadSeed(path string) (Seed, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Seed{}, fmt.Errorf("reading seed: %w", err)
	}
	var seed Seed
	if err := json.Unmarshal(b, &seed); err != nil {
		return Seed{}, fmt.Errorf("seed %s is not valid JSON: %w", path, err)
	}
	if err := seed.Validate(); err != nil {
		return Seed{}, fmt.Errorf("seed %s: %w", path, err)
	}
	return seed, nil
}

// Validate checks names, duplicates and fault values.
func (s Seed) Validate() error {
	corps := map[string]bool{}
	for _, c := range s.Corps {
		if err := checkNewName("corp", c.Name, corps); err != nil {
			return err
		}
		if err := validateCorpSeed(c); err != nil {
			return fmt.Errorf("corp %q: %w", c.Name, err)
		}
	}
	if err := s.Faults.validate(); err != nil {
		return err
	}
	return s.Dialect.validate()
}

func validateCorpSeed(c CorpSeed) error {
	for _, u := range c.Users {
		if u.Email == "" || u.Token == "" {
			return errors.New("a user needs an email and a token")
		}
	}
	sites := map[string]bool{}
	for _, site := range c.Sites {
		if err := checkNewName("site", site.Name, sites); err != nil {
			return err
		}
	}
	return nil
}

// checkNewName refuses an invalid corp or site name (kind), or one already
// in seen, and adds it to seen.
func checkNewName(kind, name string, seen map[string]bool) error {
	if !sigsci.ValidName(name) {
		return fmt.Errorf("%s name %q is invalid (use a-z, 0-9, '_', '.', '-')", kind, name)
	}
	if seen[name] {
		return fmt.Errorf("%s %q appears twice", kind, name)
	}
	seen[name] = true
	return nil
}

func (f Faults) validate() error {
	switch {
	case f.Latency < 0:
		return errors.New("latency must not be negative")
	case f.RateLimit < 0:
		return errors.New("rateLimit must not be negative")
	case f.RetryAfter != nil && *f.RetryAfter < 0:
		return errors.New("retryAfter must not be negative")
	case f.FailNext < 0 || f.DropNext < 0 || f.DropNextAfterHandling < 0:
		return errors.New("failNext, dropNext and dropNextAfterHandling must not be negative")
	case f.FailStatus != 0 && (f.FailStatus < 400 || f.FailStatus > 599):
		return fmt.Errorf("failStatus %d is not a 4xx or 5xx status", f.FailStatus)
	case f.FailEndpoint != "" && !slices.Contains(apiEndpoints(), f.FailEndpoint):
		return fmt.Errorf("failEndpoint %q is not one of %q", f.FailEndpoint, apiEndpoints())
	}
	return f.EndpointLatency.validate()
}

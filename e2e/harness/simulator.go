package harness

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// The operator's corp and API user at the simulated API: what the stories
// put in for the documentation's <corp-id> and <email-id>.
const (
	CorpID  = "acme-corp"
	EmailID = "ops@acme.test"
)

// Simulator is the Signal Sciences API simulator, served over HTTP on
// 127.0.0.1 for one test. The plugin inside Vault talks to it over the
// network like to the real API; the test reads its state and injects faults
// through the embedded *sigscisim.Server directly.
type Simulator struct {
	*sigscisim.Server
	URL    string // server root; the /sim/ controls live under it
	APIURL string // API root, the value of a role's api_url
}

// StartSimulator serves a simulator seeded with seed until the test ends.
func StartSimulator(t testing.TB, seed sigscisim.Seed) *Simulator {
	t.Helper()
	sim := sigscisim.New(seed)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		srv.Close()
		for _, secret := range sim.Secrets() {
			KeepSecret(t, "an API token or secret key of the simulator", secret)
		}
	})
	return &Simulator{Server: sim, URL: srv.URL, APIURL: srv.URL + sigscisim.APIPrefix}
}

// StartOperatorAPI serves the simulator as an operator finds the API: the
// operator's corp CorpID with sites, whose API user EmailID gets a fresh
// token, then otherCorps. It saves that token in dir/token.txt the way the
// documentation has the operator save it (the token and a newline), and
// returns the simulator and the token.
func StartOperatorAPI(t testing.TB, dir string, sites []sigscisim.SiteSeed, otherCorps ...sigscisim.CorpSeed) (*Simulator, string) {
	t.Helper()
	token := "sigsci-api-token-" + RandomHex(t)
	operator := sigscisim.CorpSeed{Name: CorpID, Users: []sigscisim.UserSeed{{Email: EmailID, Token: token}}, Sites: sites}
	sim := StartSimulator(t, sigscisim.Seed{Corps: append([]sigscisim.CorpSeed{operator}, otherCorps...)})
	if err := os.WriteFile(filepath.Join(dir, "token.txt"), []byte(token+"\n"), 0o600); err != nil {
		t.Fatalf("writing token.txt: %v", err)
	}
	return sim, token
}

// Primary returns the primary key set of a corp's site at the API, and
// fails the test when the site has none.
func (s *Simulator) Primary(t testing.TB, corp, site string) sigsci.KeySet {
	t.Helper()
	for _, ks := range s.KeySets(corp, site) {
		if ks.Primary {
			return ks
		}
	}
	t.Fatalf("the API has no primary key set for site %q", site)
	return sigsci.KeySet{}
}

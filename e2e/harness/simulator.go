package harness

import (
	"net/http/httptest"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
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

package vaultcli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// The sites of the operator's corp (harness.CorpID) at the (simulated) API.
// Another corp with a site of the same name checks that nothing crosses
// corps.
const (
	siteName  = "www"
	otherCorp = "other-corp"
)

var corpSites = []string{"api", "shop", siteName} // sorted, as Vault lists them

// desk is one operator's setup: a Vault dev server, the simulated API, and a
// working directory holding token.txt, as the documentation assumes.
type desk struct {
	vault    *harness.Vault
	sim      *harness.Simulator
	dir      string // the operator's working directory
	apiToken string // the API user's token, as saved in token.txt
}

func newDesk(t *testing.T) *desk {
	t.Helper()
	d := &desk{dir: t.TempDir()}
	d.sim, d.apiToken = harness.StartOperatorAPI(t, d.dir,
		[]sigscisim.SiteSeed{{Name: siteName, DisplayName: "WWW"}, {Name: "shop", DisplayName: "Shop"}, {Name: "api", DisplayName: "API"}},
		sigscisim.CorpSeed{
			Name:  otherCorp,
			Users: []sigscisim.UserSeed{{Email: "ops@other.test", Token: "other-token-" + harness.RandomHex(t)}},
			Sites: []sigscisim.SiteSeed{{Name: siteName, DisplayName: "Other WWW"}},
		})
	d.vault = harness.StartVault(t, &programs)
	return d
}

// newDeskWithRole is a desk on which the operator has installed the plugin
// and created the documented role.
func newDeskWithRole(t *testing.T) *desk {
	t.Helper()
	d := newDesk(t)
	d.install(t)
	d.createRole(t)
	return d
}

// documented fills the placeholders of a documented command.
func documented(command string) string {
	return strings.NewReplacer("<corp-id>", harness.CorpID, "<email-id>", harness.EmailID, "<site-name>", siteName).Replace(command)
}

// sh runs a command line in the operator's working directory.
func (d *desk) sh(t *testing.T, command string) harness.Result {
	t.Helper()
	return d.vault.Shell(t, d.dir, command)
}

// install registers and enables the plugin exactly as documented.
func (d *desk) install(t *testing.T) {
	t.Helper()
	d.vault.Shell(t, programs.Bin, docRegister).OK(t)
	d.vault.Shell(t, programs.Bin, docEnable).OK(t)
}

// createRole creates the documented role and points it at the simulator.
func (d *desk) createRole(t *testing.T) {
	t.Helper()
	d.sh(t, documented(docCreateRole)).OK(t)
	d.sh(t, "vault write /sigsci/role/vault-user api_url="+d.sim.APIURL+" token=@token.txt").OK(t)
}

// primary returns the primary key set of a site of the operator's corp at the API.
func (d *desk) primary(t *testing.T, site string) sigsci.KeySet {
	t.Helper()
	return d.sim.Primary(t, harness.CorpID, site)
}

// field returns the value of key in vault's table output ("Key   Value").
func field(t *testing.T, out, key string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		name, value, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if name == key {
			return strings.TrimSpace(value)
		}
	}
	t.Fatalf("no %q in the output:\n%s", key, out)
	return ""
}

// response is vault's -format=json output; numbers stay json.Number so the
// test sees whether the plugin sent a number or a string.
type response struct {
	LeaseID       string         `json:"lease_id"`
	LeaseDuration json.Number    `json:"lease_duration"`
	Data          map[string]any `json:"data"`
	Warnings      []string       `json:"warnings"`
}

func parseJSON(t *testing.T, out string) response {
	t.Helper()
	var r response
	dec := json.NewDecoder(bytes.NewReader([]byte(out)))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("vault printed no JSON response: %v\n%s", err, out)
	}
	return r
}

// stringField returns data[key], failing unless it is a string.
func stringField(t *testing.T, data map[string]any, key string) string {
	t.Helper()
	s, ok := data[key].(string)
	if !ok {
		t.Fatalf("data.%s is %T (%v), want a string", key, data[key], data[key])
	}
	return s
}

// positiveNumber returns data[key], failing unless it is a JSON number > 0.
func positiveNumber(t *testing.T, data map[string]any, key string) int64 {
	t.Helper()
	n, ok := data[key].(json.Number)
	if !ok {
		t.Fatalf("data.%s is %T (%v), want a JSON number", key, data[key], data[key])
	}
	v, err := n.Int64()
	if err != nil || v <= 0 {
		t.Fatalf("data.%s = %s, want a whole number of seconds > 0", key, n)
	}
	return v
}

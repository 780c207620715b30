package cluster

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// The site of the operator's corp (harness.CorpID) at the (simulated) API.
const siteName = "www"

// The documented commands, placeholders filled in.
const (
	cmdRegister   = "vault plugin register -sha256=$(sha256sum vault-plugin-sigsci|cut -c-64) secret vault-plugin-sigsci"
	cmdEnable     = "vault secrets enable -path=sigsci vault-plugin-sigsci"
	cmdCreateRole = "vault write -f /sigsci/role/vault-user corp=" + harness.CorpID + " email=" + harness.EmailID + " token=@token.txt"
	cmdCopySite   = "vault write -f /sigsci/creds/vault-user/sites/" + siteName
	cmdRotate     = "vault write -f /sigsci/rotate/sites/" + siteName
	cmdRetire     = "vault delete /sigsci/rotate/sites/" + siteName
	cmdReload     = "vault plugin reload -plugin=vault-plugin-sigsci"
	cmdReadKeys   = "vault read -format=json /sigsci/creds/vault-user/sites/" + siteName
	cmdReadStatus = "vault read -format=json /sigsci/rotate/sites/" + siteName
)

// pollEvery is how often a story looks at Vault and the API while it waits.
const pollEvery = time.Second

// operator is one operator's setup: a 3-node raft cluster, the simulated
// API, and a working directory holding token.txt.
type operator struct {
	cluster  *harness.RaftCluster
	sim      *harness.Simulator
	dir      string
	apiToken string
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	o := &operator{dir: t.TempDir()}
	o.sim, o.apiToken = harness.StartOperatorAPI(t, o.dir, []sigscisim.SiteSeed{{Name: siteName, DisplayName: "WWW"}})
	o.cluster = harness.StartRaftCluster(t, &programs)
	return o
}

// sh runs a command line on node n, in the operator's working directory.
func (o *operator) sh(t testing.TB, n *harness.RaftNode, command string) harness.Result {
	t.Helper()
	return n.Shell(t, o.dir, command)
}

// install registers and enables the plugin, writes the role (pointed at the
// simulator) and copies the site, all through node n.
func (o *operator) install(t testing.TB, n *harness.RaftNode) {
	t.Helper()
	n.Shell(t, programs.Bin, cmdRegister).OK(t)
	n.Shell(t, programs.Bin, cmdEnable).OK(t)
	o.sh(t, n, cmdCreateRole+" api_url="+o.sim.APIURL).OK(t)
	o.sh(t, n, cmdCopySite).OK(t)
}

// vaultKeys is what Vault stores for the site, as a creds read shows it.
type vaultKeys struct {
	Primary    string   `json:"accessKey"`
	NonPrimary []string `json:"non_primary_access_keys"`
}

func (k vaultKeys) holds(accessKey string) bool {
	return k.Primary == accessKey || slices.Contains(k.NonPrimary, accessKey)
}

func (k vaultKeys) String() string {
	return fmt.Sprintf("primary %s, non-primary %v", k.Primary, k.NonPrimary)
}

// keys reads what Vault stores for the site, through node n.
func (o *operator) keys(t testing.TB, n *harness.RaftNode) vaultKeys {
	t.Helper()
	keys, err := o.tryKeys(t, n)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func (o *operator) tryKeys(t testing.TB, n *harness.RaftNode) (vaultKeys, error) {
	t.Helper()
	var resp struct {
		Data vaultKeys `json:"data"`
	}
	err := o.readJSON(t, n, cmdReadKeys, &resp)
	return resp.Data, err
}

// tryPending reads the site's unfinished operations from its rotation status.
func (o *operator) tryPending(t testing.TB, n *harness.RaftNode) ([]map[string]any, error) {
	t.Helper()
	var resp struct {
		Data struct {
			Pending []map[string]any `json:"pending_operations"`
		} `json:"data"`
	}
	err := o.readJSON(t, n, cmdReadStatus, &resp)
	return resp.Data.Pending, err
}

// readJSON runs a read with -format=json on node n and decodes its answer.
func (o *operator) readJSON(t testing.TB, n *harness.RaftNode, command string, v any) error {
	t.Helper()
	r := o.sh(t, n, command)
	if r.ExitCode != 0 {
		return fmt.Errorf("%s on %s failed: %s", command, n.Name, strings.TrimSpace(r.Stderr))
	}
	if err := json.Unmarshal([]byte(r.Stdout), v); err != nil {
		return fmt.Errorf("%s on %s printed no JSON answer: %w\n%s", command, n.Name, err, r.Stdout)
	}
	return nil
}

// apiSets is the site's live key sets at the API.
func (o *operator) apiSets() []sigsci.KeySet { return o.sim.KeySets(harness.CorpID, siteName) }

// apiPrimary is the site's primary key set at the API.
func (o *operator) apiPrimary(t testing.TB) sigsci.KeySet {
	t.Helper()
	return o.sim.Primary(t, harness.CorpID, siteName)
}

// settled reports whether Vault has nothing left to do on the site: no
// pending operation, and its primary is the API's. A read that fails (as
// during a failover) counts as not settled.
func (o *operator) settled(t testing.TB, n *harness.RaftNode) (bool, string) {
	t.Helper()
	pending, err := o.tryPending(t, n)
	if err != nil {
		return false, err.Error()
	}
	keys, err := o.tryKeys(t, n)
	if err != nil {
		return false, err.Error()
	}
	primary := o.apiPrimary(t).AccessKey
	state := fmt.Sprintf("Vault: %s, %d pending operation(s); the API: %s", keys, len(pending), describe(o.apiSets()))
	return len(pending) == 0 && keys.Primary == primary, state
}

// mustAgree fails unless Vault (read through n) and the API agree on the
// site's key sets: Vault's primary is the API's, every set at the API is one
// Vault stores (nothing orphaned), and every set Vault stores is live at the
// API.
func (o *operator) mustAgree(t testing.TB, n *harness.RaftNode) vaultKeys {
	t.Helper()
	keys, sets := o.keys(t, n), o.apiSets()
	var problems []string
	for _, ks := range sets {
		if ks.Primary && ks.AccessKey != keys.Primary {
			problems = append(problems, fmt.Sprintf("the API's primary %s is not Vault's primary", ks.AccessKey))
		}
		if !keys.holds(ks.AccessKey) {
			problems = append(problems, fmt.Sprintf("orphaned: %s is live at the API and unknown to Vault", ks.AccessKey))
		}
	}
	for _, stored := range append([]string{keys.Primary}, keys.NonPrimary...) {
		if !slices.ContainsFunc(sets, func(ks sigsci.KeySet) bool { return ks.AccessKey == stored }) {
			problems = append(problems, fmt.Sprintf("Vault stores %s, which the API does not have", stored))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("Vault (through %s) and the API disagree on %s:\n  %s\nVault: %s\nthe API: %s",
			n.Name, siteName, strings.Join(problems, "\n  "), keys, describe(sets))
	}
	return keys
}

// allNodesRead fails unless every running node reads the same keys, and
// returns them.
func (o *operator) allNodesRead(t testing.TB, nodes []*harness.RaftNode) vaultKeys {
	t.Helper()
	first := o.keys(t, nodes[0])
	for _, n := range nodes[1:] {
		if got := o.keys(t, n); got.String() != first.String() {
			t.Fatalf("%s reads %s, %s reads %s", nodes[0].Name, first, n.Name, got)
		}
	}
	return first
}

// waitForCreates waits until the API has received n creates in all.
func (o *operator) waitForCreates(t testing.TB, n int, within time.Duration) {
	t.Helper()
	poll.Within(t, within, 50*time.Millisecond, fmt.Sprintf("%d create(s) at the API", n), func() (bool, string) {
		got := o.sim.Calls(sigscisim.EndpointCreateKeySet)
		return got >= n, fmt.Sprintf("%d create(s)", got)
	})
}

// waitForSets waits until the API holds n key sets for the site.
func (o *operator) waitForSets(t testing.TB, n int, within time.Duration) {
	t.Helper()
	poll.Within(t, within, 50*time.Millisecond, fmt.Sprintf("%d key sets at the API", n), func() (bool, string) {
		return len(o.apiSets()) == n, describe(o.apiSets())
	})
}

// reloadsLogged counts the reloads of the plugin in a node's server log.
func reloadsLogged(t testing.TB, n *harness.RaftNode) int {
	t.Helper()
	return strings.Count(n.ServerLog(t), "successfully reloaded plugin")
}

func describe(sets []sigsci.KeySet) string {
	var out []string
	for _, ks := range sets {
		if ks.Primary {
			out = append(out, ks.AccessKey+" (primary)")
		} else {
			out = append(out, ks.AccessKey)
		}
	}
	return "[" + strings.Join(out, ", ") + "]"
}

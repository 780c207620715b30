package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/poll"
)

// How long a cluster may take to form, a node to come up or back, and an
// election to produce a new active node.
const (
	raftFormTimeout   = 3 * time.Minute
	raftNodeTimeout   = 2 * time.Minute
	raftElectTimeout  = 2 * time.Minute
	raftClusterSize   = 3
	raftUnsealTimeout = 30 * time.Second // one unseal call; a joining node answers once it has the keyring
)

// RaftCluster is a cluster of three real Vault servers on loopback with
// integrated storage (raft), initialised with one Shamir key share and
// unsealed, whose plugin directory is the run's binaries directory. It stops
// when the test that started it ends.
type RaftCluster struct {
	Nodes []*RaftNode
	Token string // the root token of the cluster

	unsealKey string
	home      string
	client    *http.Client // for calls that may wait (unseal)
	probe     *http.Client // for status probes
}

// RaftNode is one server of a RaftCluster. The embedded Vault is its process
// and the target of its CLI commands: Shell and Run on a node talk to that
// node's address with the cluster's root token.
type RaftNode struct {
	*Vault
	Name        string // its raft node id
	ClusterAddr string // https://127.0.0.1:<port>, for raft and request forwarding

	config string
	down   bool // killed and not restarted
}

// StartRaftCluster starts three nodes, initialises the first (operator
// init, one key share), unseals it, joins the other two to it (operator
// raft join) and unseals them, and waits until all three are raft voters and
// one node is active.
func StartRaftCluster(t testing.TB, p *Programs) *RaftCluster {
	t.Helper()
	p.Require(t)
	dir := t.TempDir()
	c := &RaftCluster{
		home:   filepath.Join(dir, "home"),
		client: &http.Client{Timeout: raftUnsealTimeout},
		probe:  &http.Client{Timeout: 2 * time.Second},
	}
	if err := os.Mkdir(c.home, 0o700); err != nil {
		t.Fatalf("creating the cluster's home: %v", err)
	}
	began := time.Now()
	for i := 1; i <= raftClusterSize; i++ {
		c.Nodes = append(c.Nodes, c.startNode(t, p, dir, i))
	}
	c.initialize(t)
	first := c.Nodes[0]
	c.unseal(t, first)
	c.Active(t)
	for _, n := range c.Nodes[1:] {
		n.Run(t, c.home, "operator", "raft", "join", first.Addr).OK(t)
		c.unseal(t, n)
	}
	c.waitVoters(t)
	active := c.Active(t)
	t.Logf("raft cluster of %d nodes formed in %s; %s is active", raftClusterSize, time.Since(began).Round(time.Millisecond), active.Name)
	return c
}

// startNode starts node i on free ports, trying again if a port was taken
// meanwhile, and waits until it listens.
func (c *RaftCluster) startNode(t testing.TB, p *Programs, dir string, i int) *RaftNode {
	t.Helper()
	name := fmt.Sprintf("node%d", i)
	nodeDir := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Join(nodeDir, "raft"), 0o700); err != nil {
		t.Fatalf("creating the data directory of %s: %v", name, err)
	}
	n := &RaftNode{Name: name, config: filepath.Join(nodeDir, "vault.hcl"), Vault: &Vault{
		LogPath:    filepath.Join(nodeDir, "vault.log"),
		StdoutPath: filepath.Join(nodeDir, "vault.stdout"),
		Home:       c.home,
		programs:   p,
	}}
	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		if lastErr = n.writeConfig(nodeDir, p.Bin); lastErr != nil {
			break
		}
		if lastErr = n.launchAndListen(t); lastErr == nil {
			t.Cleanup(func() {
				n.stop(t)
				KeepFile(t, "the Vault server log of "+name+" of "+t.Name(), n.LogPath)
				KeepFile(t, "the Vault server output of "+name+" of "+t.Name(), n.StdoutPath)
			})
			return n
		}
		if !n.portWasTaken() {
			break
		}
	}
	t.Fatalf("starting Vault %s: %v", name, lastErr)
	return nil
}

// writeConfig picks free ports and writes the node's server configuration.
func (n *RaftNode) writeConfig(nodeDir, pluginDir string) error {
	api, err := freePort()
	if err != nil {
		return err
	}
	cluster, err := freePort()
	if err != nil {
		return err
	}
	apiListen := net.JoinHostPort("127.0.0.1", strconv.Itoa(api))
	clusterListen := net.JoinHostPort("127.0.0.1", strconv.Itoa(cluster))
	n.Addr, n.ClusterAddr = "http://"+apiListen, "https://"+clusterListen
	config := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = %q
}
listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
}
api_addr         = %q
cluster_addr     = %q
disable_mlock    = true
plugin_directory = %q
`, filepath.Join(nodeDir, "raft"), n.Name, apiListen, clusterListen, n.Addr, n.ClusterAddr, pluginDir)
	if err := os.WriteFile(n.config, []byte(config), 0o600); err != nil {
		return fmt.Errorf("writing the Vault config of %s: %w", n.Name, err)
	}
	return nil
}

// launchAndListen starts the node's server and waits until its API answers
// (sealed, or not yet initialised).
func (n *RaftNode) launchAndListen(t testing.TB) error {
	if err := n.launch("server", "-config="+n.config, "-log-level=debug"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.Context(), vaultStartTimeout)
	defer cancel()
	err := n.waitUntil(ctx, "listening", func(ctx context.Context, client *http.Client) bool {
		return n.status(ctx, client, "/v1/sys/health", "") != 0
	})
	if err != nil {
		n.proc.Kill()
		return fmt.Errorf("%w\nlast lines of the server log:\n%s", err, n.logTail(30))
	}
	return nil
}

// initResult is the part of `vault operator init -format=json` the cluster keeps.
type initResult struct {
	UnsealKeys []string `json:"unseal_keys_b64"`
	RootToken  string   `json:"root_token"`
}

// initialize runs the operator's init on the first node and keeps its root
// token and unseal key for the sweep; neither is ever printed.
func (c *RaftCluster) initialize(t testing.TB) {
	t.Helper()
	r := c.Nodes[0].Run(t, c.home, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	if r.ExitCode != 0 {
		t.Fatalf("vault operator init failed (exit %d):\n%s", r.ExitCode, r.Stderr)
	}
	var res initResult
	if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil || len(res.UnsealKeys) != 1 || res.RootToken == "" {
		t.Fatalf("vault operator init printed no root token and one unseal key (%v)", err)
	}
	c.Token, c.unsealKey = res.RootToken, res.UnsealKeys[0]
	KeepSecret(t, "the raft cluster's root token", c.Token)
	KeepSecret(t, "the raft cluster's unseal key", c.unsealKey)
	for _, n := range c.Nodes {
		n.Token = c.Token
	}
}

// unseal gives the node the unseal key (over the API, so that the key is in
// no command line) until it reports itself unsealed and in the cluster.
func (c *RaftCluster) unseal(t testing.TB, n *RaftNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), raftNodeTimeout)
	defer cancel()
	var lastErr error
	err := n.waitUntil(ctx, "unsealed", func(ctx context.Context, client *http.Client) bool {
		if s := n.status(ctx, client, "/v1/sys/health", ""); s == http.StatusOK || s == http.StatusTooManyRequests {
			return true // active, or an unsealed standby
		}
		if sealed, err := c.sealed(ctx, n); err != nil || !sealed {
			lastErr = err
			return false // unsealing, or not answering yet
		}
		lastErr = c.submitUnsealKey(ctx, n)
		return false
	})
	if err != nil {
		t.Fatalf("unsealing %s: %v (last unseal error: %v)\nlast lines of its log:\n%s", n.Name, err, lastErr, n.logTail(30))
	}
}

// sealed reports the node's seal status.
func (c *RaftCluster) sealed(ctx context.Context, n *RaftNode) (bool, error) {
	var status struct {
		Sealed bool `json:"sealed"`
	}
	if err := c.call(ctx, c.probe, n, http.MethodGet, "/v1/sys/seal-status", nil, &status); err != nil {
		return false, err
	}
	return status.Sealed, nil
}

// submitUnsealKey sends the unseal key to the node.
func (c *RaftCluster) submitUnsealKey(ctx context.Context, n *RaftNode) error {
	body, err := json.Marshal(map[string]string{"key": c.unsealKey})
	if err != nil {
		return err
	}
	return c.call(ctx, c.client, n, http.MethodPut, "/v1/sys/unseal", body, nil)
}

// call sends one API request to the node with client and decodes its JSON
// answer into out (if not nil). Errors name the path and Vault's answer,
// never the body sent.
func (c *RaftCluster) call(ctx context.Context, client *http.Client, n *RaftNode, method, path string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, n.Addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	var answer bytes.Buffer
	if _, err := answer.ReadFrom(resp.Body); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s answered %d: %s", method, path, resp.StatusCode, strings.TrimSpace(answer.String()))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(answer.Bytes(), out)
}

// raftPeers is `vault operator raft list-peers -format=json`.
type raftPeers struct {
	Data struct {
		Config struct {
			Servers []struct {
				NodeID string `json:"node_id"`
				Leader bool   `json:"leader"`
				Voter  bool   `json:"voter"`
			} `json:"servers"`
		} `json:"config"`
	} `json:"data"`
}

// waitVoters waits until the raft configuration lists every node as a voter.
func (c *RaftCluster) waitVoters(t testing.TB) {
	t.Helper()
	poll.Within(t, raftFormTimeout, time.Second, fmt.Sprintf("%d raft voters", raftClusterSize), func() (bool, string) {
		r := c.Active(t).Run(t, c.home, "operator", "raft", "list-peers", "-format=json")
		var peers raftPeers
		if r.ExitCode != 0 || json.Unmarshal([]byte(r.Stdout), &peers) != nil {
			return false, r.String()
		}
		var voters []string
		for _, s := range peers.Data.Config.Servers {
			if s.Voter {
				voters = append(voters, s.NodeID)
			}
		}
		return len(voters) == raftClusterSize, fmt.Sprintf("voters %v", voters)
	})
}

// Active waits until one running node is the active node and returns it.
func (c *RaftCluster) Active(t testing.TB) *RaftNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), raftElectTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, n := range c.running() {
			if n.status(ctx, c.probe, "/v1/sys/health", "") == http.StatusOK {
				return n
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no node of the raft cluster became active within %s", raftElectTimeout)
		case <-tick.C:
		}
	}
}

// Standbys waits until every other running node is a standby that names the
// active node as its leader (so that it forwards requests to it), and returns
// them.
func (c *RaftCluster) Standbys(t testing.TB) []*RaftNode {
	t.Helper()
	active := c.Active(t)
	var out []*RaftNode
	for _, n := range c.running() {
		if n == active {
			continue
		}
		ctx, cancel := context.WithTimeout(t.Context(), raftElectTimeout)
		err := n.waitUntil(ctx, "a standby of "+active.Name, func(ctx context.Context, _ *http.Client) bool {
			return c.leaderOf(ctx, n) == active.Addr
		})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		out = append(out, n)
	}
	return out
}

// leaderOf is the API address of the active node as n knows it ("" if n
// does not answer or knows none).
func (c *RaftCluster) leaderOf(ctx context.Context, n *RaftNode) string {
	var leader struct {
		LeaderAddress string `json:"leader_address"`
	}
	if c.call(ctx, c.probe, n, http.MethodGet, "/v1/sys/leader", nil, &leader) != nil {
		return ""
	}
	return leader.LeaderAddress
}

// running lists the nodes that were not killed (or were restarted since).
func (c *RaftCluster) running() []*RaftNode {
	var out []*RaftNode
	for _, n := range c.Nodes {
		if !n.down {
			out = append(out, n)
		}
	}
	return out
}

// Kill9 kills the node and its plugins at once (SIGKILL to its process
// group), as a crash of the machine it runs on would.
func (c *RaftCluster) Kill9(t testing.TB, n *RaftNode) {
	t.Helper()
	n.proc.Kill()
	n.down = true
	t.Logf("killed %s (SIGKILL)", n.Name)
}

// Restart starts a killed node again on its data directory and ports, and
// unseals it; it rejoins the cluster as a standby.
func (c *RaftCluster) Restart(t testing.TB, n *RaftNode) {
	t.Helper()
	if !n.down {
		t.Fatalf("restarting %s, which runs", n.Name)
	}
	if err := n.launchAndListen(t); err != nil {
		t.Fatalf("restarting %s: %v", n.Name, err)
	}
	n.down = false
	c.unseal(t, n)
	t.Logf("restarted and unsealed %s", n.Name)
}

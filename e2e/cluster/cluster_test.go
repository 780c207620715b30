package cluster

import (
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

// How slow the API's create is in each story. Each stays below the plugin
// client's own timeout of one call (10s), except the create that the plugin
// has stopped waiting for anyway.
const (
	answerOnTheWay  = 8 * time.Second  // kill -9: the create has landed, its answer is on the way
	slowCreate      = 5 * time.Second  // reload during an operator's rotation
	slowServerWork  = 20 * time.Second // reload during a scheduled rotation: lands long after the reload
	finishDeadline  = 3 * time.Minute  // for the new active node to finish a rotation whose create landed
	settleDeadline  = 10 * time.Minute // for a reloaded plugin: covers a WAL rollback age of several minutes
	scheduleTimeout = 3 * time.Minute  // after the scheduled time, for the minutely automation to start
)

// TestOperatorWorksThroughStandbys installs and runs the plugin with every
// command typed against a standby node, which forwards it to the active one.
func TestOperatorWorksThroughStandbys(t *testing.T) {
	o := newOperator(t)
	standbys := o.cluster.Standbys(t)
	first := o.apiPrimary(t)
	t.Logf("%s is active; the operator types against the standbys %s and %s", o.cluster.Active(t).Name, standbys[0].Name, standbys[1].Name)

	harness.Step(t, "the operator registers and enables the plugin through a standby", func(t testing.TB) {
		succeedsSaying(t, standbys[0].Shell(t, programs.Bin, cmdRegister), "Registered plugin: vault-plugin-sigsci")
		succeedsSaying(t, standbys[0].Shell(t, programs.Bin, cmdEnable), "Enabled the vault-plugin-sigsci secrets engine at: sigsci/")
		for _, n := range o.cluster.Nodes {
			succeedsSaying(t, o.sh(t, n, "vault secrets list -format=json"), `"sigsci/"`, `"type": "vault-plugin-sigsci"`)
		}
	})

	harness.Step(t, "the role is written and the site copied through the other standby", func(t testing.TB) {
		o.sh(t, standbys[1], cmdCreateRole+" api_url="+o.sim.APIURL).OK(t)
		o.sh(t, standbys[1], cmdCopySite).OK(t)
		if keys := o.mustAgree(t, standbys[1]); keys.Primary != first.AccessKey || len(keys.NonPrimary) != 0 {
			t.Fatalf("after the copy Vault holds %s, want the API's primary %s alone", keys, first.AccessKey)
		}
	})

	var rotated string
	harness.Step(t, "a rotation through a standby makes a new primary and keeps the old set", func(t testing.TB) {
		o.sh(t, standbys[0], cmdRotate).OK(t)
		keys := o.mustAgree(t, standbys[0])
		if keys.Primary == first.AccessKey || !slices.Equal(keys.NonPrimary, []string{first.AccessKey}) {
			t.Fatalf("after the rotation Vault holds %s, want a new primary and %s as non-primary", keys, first.AccessKey)
		}
		rotated = keys.Primary
	})

	harness.Step(t, "every node reads the same keys", func(t testing.TB) {
		if keys := o.allNodesRead(t, o.cluster.Nodes); keys.Primary != rotated {
			t.Fatalf("the nodes read %s, want primary %s", keys, rotated)
		}
	})

	harness.Step(t, "the old set is retired through a standby", func(t testing.TB) {
		if refused := o.sh(t, standbys[1], cmdRetire).Refused(t); !strings.Contains(refused, "force=true") {
			t.Fatalf("the guard's refusal does not name force=true:\n%s", refused)
		}
		o.sh(t, standbys[1], cmdRetire+" force=true").OK(t)
		if sets := o.apiSets(); len(sets) != 1 || sets[0].AccessKey != rotated {
			t.Fatalf("after retiring the API holds %s, want only %s", describe(sets), rotated)
		}
		if old := o.sim.CheckAgentKeys(first.AccessKey, first.SecretKey); old.Live {
			t.Fatalf("the retired set is still live at the API")
		}
		if keys := o.allNodesRead(t, o.cluster.Nodes); keys.Primary != rotated || len(keys.NonPrimary) != 0 {
			t.Fatalf("after retiring the nodes read %s", keys)
		}
		o.mustAgree(t, standbys[0])
	})
}

// TestActiveNodeKilledWhileTheCreateIsInFlight kills the active node (and
// its plugin) with SIGKILL after a rotation's create has landed at the API
// and while its answer is still on the way. A standby becomes active, and
// its plugin finishes the rotation from the write-ahead log: the new set is
// stored as primary, the old one kept as non-primary, nothing pending.
func TestActiveNodeKilledWhileTheCreateIsInFlight(t *testing.T) {
	o := newOperator(t)
	o.install(t, o.cluster.Standbys(t)[0])
	first := o.apiPrimary(t)
	killed := o.cluster.Active(t)

	var killedAt time.Time
	harness.Step(t, "the active node dies while the create's answer is on the way", func(t testing.TB) {
		o.sim.SetEndpointLatency(sigscisim.EndpointCreateKeySet, answerOnTheWay, true)
		defer o.sim.SetEndpointLatency(sigscisim.EndpointCreateKeySet, 0, false)
		rotation := killed.StartShell(t, o.dir, cmdRotate)
		o.waitForSets(t, 2, time.Minute) // the create has landed
		o.cluster.Kill9(t, killed)
		killedAt = time.Now()
		if r := rotation.Wait(t); r.ExitCode == 0 {
			t.Fatalf("the rotation answered before its node died; the story proves nothing:\n%s", r)
		}
	})

	var active *harness.RaftNode
	var elected time.Duration
	harness.Step(t, "a standby becomes the active node", func(t testing.TB) {
		active = o.cluster.Active(t)
		elected = time.Since(killedAt)
		t.Logf("%s is active %s after %s was killed", active.Name, elected.Round(100*time.Millisecond), killed.Name)
	})

	harness.Step(t, "the new active node finishes the rotation: nothing orphaned, nothing lost", func(t testing.TB) {
		poll.Within(t, finishDeadline, pollEvery, "the new active node to finish the rotation", func() (bool, string) {
			return o.settled(t, active)
		})
		finished := time.Since(killedAt)
		keys := o.mustAgree(t, active)
		if keys.Primary == first.AccessKey || !slices.Equal(keys.NonPrimary, []string{first.AccessKey}) {
			t.Fatalf("Vault holds %s, want the created set as primary and %s as non-primary", keys, first.AccessKey)
		}
		t.Logf("the rotation was finished %s after the kill, %s after %s became active",
			finished.Round(100*time.Millisecond), (finished - elected).Round(100*time.Millisecond), active.Name)
	})

	harness.Step(t, "the killed node comes back as a standby and every node reads the same", func(t testing.TB) {
		o.cluster.Restart(t, killed)
		if !slices.Contains(o.cluster.Standbys(t), killed) {
			t.Fatalf("%s did not come back as a standby", killed.Name)
		}
		o.allNodesRead(t, o.cluster.Nodes)
		o.mustAgree(t, killed)
	})
}

// TestPluginReloadDuringARotation reloads the plugin while a rotation's
// create is slow at the API: first an operator's rotation, then a scheduled
// one running in the background, whose create lands only after the reload
// has replaced the plugin's backend. Either way the rotation completes (by
// the old backend, or by the new one later), nothing is orphaned at the API
// and nothing lost in Vault, and the old set stays live while it is primary.
func TestPluginReloadDuringARotation(t *testing.T) {
	o := newOperator(t)
	standbys := o.cluster.Standbys(t)
	o.install(t, standbys[0])
	active := o.cluster.Active(t)

	harness.Step(t, "a reload during an operator's rotation with a slow create", func(t testing.TB) {
		first := o.apiPrimary(t)
		o.sim.SetEndpointLatency(sigscisim.EndpointCreateKeySet, slowCreate, false)
		defer o.sim.SetEndpointLatency(sigscisim.EndpointCreateKeySet, 0, false)
		rotation := standbys[0].StartShell(t, o.dir, cmdRotate)
		o.waitForCreates(t, 1, time.Minute)
		o.reload(t, standbys[1], active)
		r := rotation.Wait(t)
		t.Logf("the rotation answered (exit %d): %s %s", r.ExitCode, strings.TrimSpace(r.Stdout), strings.TrimSpace(r.Stderr))
		o.mustFinish(t, active, first)
	})

	harness.Step(t, "the old set is retired, so that a scheduled rotation may start", func(t testing.TB) {
		o.sh(t, standbys[0], cmdRetire+" force=true").OK(t)
		if sets := o.apiSets(); len(sets) != 1 {
			t.Fatalf("after retiring the API holds %s", describe(sets))
		}
	})

	harness.Step(t, "a reload while a scheduled rotation's create is in flight", func(t testing.TB) {
		first := o.apiPrimary(t)
		creates := o.sim.Calls(sigscisim.EndpointCreateKeySet)
		o.sim.SetEndpointLatency(sigscisim.EndpointCreateKeySet, slowServerWork, false)
		defer o.sim.SetEndpointLatency(sigscisim.EndpointCreateKeySet, 0, false)
		at := time.Now().UTC().Add(2 * time.Minute).Truncate(time.Minute)
		o.sh(t, standbys[0], fmt.Sprintf(`vault write /sigsci/role/vault-user rotation_schedule="%d %d * * *" rotation_window=5m auto_retire=false`,
			at.Minute(), at.Hour())).OK(t)
		o.waitForCreates(t, creates+1, time.Until(at)+scheduleTimeout)
		o.reload(t, standbys[1], active)
		o.waitForSets(t, 2, time.Minute) // the create landed, after the reload
		o.sim.SetEndpointLatency(sigscisim.EndpointCreateKeySet, 0, false)
		o.mustFinish(t, active, first)
		// The interrupted rotation, once completed, is the scheduled time's
		// rotation: no second one on top of it, so hosts skip no key.
		if sets := o.apiSets(); len(sets) != 2 {
			t.Fatalf("one scheduled time rotated more than once: the API holds %s", describe(sets))
		}
	})
}

// reload reloads the plugin through node via, and checks that the active
// node's log shows the reload.
func (o *operator) reload(t testing.TB, via, active *harness.RaftNode) {
	t.Helper()
	before := reloadsLogged(t, active)
	began := time.Now()
	o.sh(t, via, cmdReload).OK(t)
	if reloadsLogged(t, active) <= before {
		t.Fatalf("%s's log shows no reload of the plugin after %q", active.Name, cmdReload)
	}
	t.Logf("the reload took %s", time.Since(began).Round(100*time.Millisecond))
}

// mustFinish waits until Vault has nothing left to do on the site, then
// checks that it agrees with the API, that the rotation away from first
// happened, and that first is still live and stored.
func (o *operator) mustFinish(t testing.TB, active *harness.RaftNode, first sigsci.KeySet) {
	t.Helper()
	took := poll.Within(t, settleDeadline, pollEvery, "Vault to finish the rotation", func() (bool, string) {
		return o.settled(t, active)
	})
	keys := o.mustAgree(t, active)
	if keys.Primary == first.AccessKey {
		t.Fatalf("Vault holds %s: the rotation away from %s never completed", keys, first.AccessKey)
	}
	if !o.sim.CheckAgentKeys(first.AccessKey, first.SecretKey).Live || !keys.holds(first.AccessKey) {
		t.Fatalf("the old set %s is gone (Vault holds %s, the API %s)", first.AccessKey, keys, describe(o.apiSets()))
	}
	t.Logf("Vault settled %s after the reload: %s", took.Round(100*time.Millisecond), keys)
}

// succeedsSaying fails unless the command exited 0 and printed every want.
func succeedsSaying(t testing.TB, r harness.Result, wants ...string) {
	t.Helper()
	out := r.OK(t)
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Fatalf("the output does not say %q:\n%s", want, r)
		}
	}
}

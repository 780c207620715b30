package host

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// fleetSize is how many hosts the fleet story runs: one hostd and one
// agent unit each, all on one user manager.
const fleetSize = 10

// The scheduler runs on Vault's periodic tick, about once a minute: a
// scheduled rotation and the retirement after it each wait up to a tick.
const tickTimeout = 3 * time.Minute

// fleet is one site's WAF hosts and the operator's side of them.
type fleet struct {
	ops   *host // the simulator, Vault, the role and the hosts' AppRole; no hostd
	hosts []*host
}

// setUpFleet starts fleetSize hosts named web-01…: each its own hostd
// (own configuration, state directory, AppRole secret-id and fleet name)
// and its own agent unit, and returns once every host reports the primary.
func setUpFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{ops: newHost(t, systemdtest.Start(t))}
	bin := buildFakeAgent(t)
	for i := 1; i <= fleetSize; i++ {
		h := *f.ops
		name := fmt.Sprintf("web-%02d", i)
		h.placeIn(filepath.Join(f.ops.work, name), name, "sigsci-agent-"+name+".service")
		h.stateDir = filepath.Join(h.dir, "state")
		h.agentBin, h.recheck = bin, time.Second
		harness.StepT(t, name+" gets its own secret-id of the hosts' AppRole", func(t *testing.T) {
			if err := os.MkdirAll(h.stateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			h.sh(t, "cp host/role-id "+name+"/role-id").OK(t)
			h.sh(t, "vault write -f -field=secret_id auth/approle/role/host-"+siteName+"/secret-id > "+name+"/secret-id").OK(t)
		})
		h.installAgent(t)
		h.startAgentAndHostd(t, t)
		f.hosts = append(f.hosts, &h)
	}
	first := primary(t, f.ops.sim).AccessKey
	harness.StepT(t, "every host reports the primary key", func(t *testing.T) {
		f.waitForView(t, "all hosts on "+first, func(v fleetView) bool {
			return v.PrimaryAccessKey == first && len(v.OnPrimary) == fleetSize && v.RetireAllowed
		})
	})
	return f
}

func (f *fleet) host(name string) *host {
	for _, h := range f.hosts {
		if h.name == name {
			return h
		}
	}
	panic("no host " + name)
}

// waitForView polls the site's fleet view until cond holds.
func (f *fleet) waitForView(t *testing.T, what string, cond func(fleetView) bool) fleetView {
	t.Helper()
	var got fleetView
	f.ops.pollFleet(t, waitTimeout, "the fleet view to show "+what, func(v fleetView) (bool, string) {
		got = v
		return cond(v), fmt.Sprintf("%+v", v)
	})
	return got
}

// onKeySince tracks, from the fleet view, when each host was first seen
// reporting a key; a host seen at time T had reported by T.
type onKeySince struct {
	accessKey string
	seen      map[string]time.Time
}

func (o *onKeySince) observe(v fleetView) {
	now := time.Now()
	for _, name := range v.OnPrimary {
		if _, ok := o.seen[name]; !ok && v.PrimaryAccessKey == o.accessKey {
			o.seen[name] = now
		}
	}
}

// stopHostd stops the host's hostd with SIGTERM, as `systemctl stop hostd`
// does, and waits until it is gone (failing the story, and killing it,
// after 30s). The agent keeps running. A hostd that has already exited
// fails the story: what follows would check a crash, not a stop.
func (h *host) stopHostd(t *testing.T) {
	t.Helper()
	select {
	case <-h.hostd.Exited():
		t.Fatalf("hostd of %s exited before the story stopped it: %v", h.name, h.hostd.Err())
	default:
	}
	h.hostd.stop(t)
}

// nextMinute is a cron spec that fires once, at the next full minute at
// least 10 seconds away, and that moment.
func nextMinute() (string, time.Time) {
	now := time.Now().UTC()
	fire := now.Truncate(time.Minute).Add(time.Minute)
	if fire.Sub(now) < 10*time.Second {
		fire = fire.Add(time.Minute)
	}
	return fmt.Sprintf("%d %d * * *", fire.Minute(), fire.Hour()), fire
}

// TestScheduledRotationIsRetiredOnlyAfterTheLastHost is the closed loop on
// a fleet: a rotation fires on the role's schedule while one host's hostd is
// down; every other host picks it up and reports; the retirement waits,
// naming the host, until that host comes back and reports the new key; then
// the old set is retired by itself. No agent ever runs on a retired set.
// Last, force=true retires while a host is still on the old key, and says so.
func TestScheduledRotationIsRetiredOnlyAfterTheLastHost(t *testing.T) {
	f := setUpFleet(t)
	ops, late := f.ops, f.host("web-03")
	story := t // a hostd started in a step outlives it
	old := primary(t, ops.sim)

	var fire time.Time
	harness.StepT(t, "the operator schedules the role's rotation; web-03's hostd is stopped", func(t *testing.T) {
		var spec string
		spec, fire = nextMinute()
		ops.sh(t, `vault write /sigsci/role/vault-user rotation_schedule="`+spec+`" rotation_window=5m`).OK(t)
		role := parseJSON(t, ops.sh(t, "vault read -format=json /sigsci/role/vault-user").OK(t))
		if role["next_rotation"] != fire.Format(time.RFC3339) || role["auto_retire"] != true {
			t.Fatalf("the role after scheduling %q at %s: %v", spec, fire.Format(time.RFC3339), role)
		}
		late.stopHostd(t)
	})

	var rotated sigsci.KeySet
	harness.StepT(t, "the scheduled rotation fires", func(t *testing.T) {
		waitWithin(t, tickTimeout, "the scheduled rotation", func() (bool, string) {
			rotated = primary(t, ops.sim)
			return rotated.AccessKey != old.AccessKey, "primary " + rotated.AccessKey
		})
		if rotated.Created.Before(fire) {
			t.Fatalf("the new set was created at %s, before the scheduled time %s", rotated.Created, fire)
		}
		t.Logf("scheduled for %s; the new set was created %s later", fire.Format(time.TimeOnly), rotated.Created.Sub(fire).Round(time.Second))
	})

	onNew := &onKeySince{accessKey: rotated.AccessKey, seen: map[string]time.Time{}}
	harness.StepT(t, "nine hosts report the new key; web-03 holds the retirement back", func(t *testing.T) {
		v := f.waitForView(t, "nine hosts on the new key and web-03 on the old one", func(v fleetView) bool {
			onNew.observe(v)
			return len(v.OnPrimary) == fleetSize-1 && v.OnOldKeys[late.name] == old.AccessKey
		})
		blocker := late.name + " (" + old.AccessKey + ")"
		if v.RetireAllowed || !strings.Contains(v.RetireBlockedBy, blocker) {
			t.Fatalf("the fleet view lets the retirement through or does not name %s: %+v", blocker, v)
		}
		stderr := ops.sh(t, "vault delete /sigsci/rotate/sites/"+siteName).Refused(t)
		if !strings.Contains(stderr, "Code: 409") || !strings.Contains(stderr, blocker) {
			t.Errorf("the documented retirement was not refused naming %s:\n%s", blocker, stderr)
		}
		waitWithin(t, tickTimeout, "Vault's log to say auto_retire waits for "+blocker, func() (bool, string) {
			for _, line := range strings.Split(ops.vault.ServerLog(t), "\n") {
				if strings.Contains(line, "auto_retire waits") && strings.Contains(line, blocker) {
					return true, ""
				}
			}
			return false, "not logged yet"
		})
		status := parseJSON(t, ops.sh(t, "vault read -format=json /sigsci/rotate/sites/"+siteName).OK(t))
		if why, _ := status["auto_retire_waiting"].(string); !strings.Contains(why, blocker) {
			t.Errorf("the rotation status does not say why auto_retire waits: %v", status)
		}
		if r := ops.sim.CheckAgentKeys(old.AccessKey, old.SecretKey); !r.Live {
			t.Fatal("the old set was retired while web-03's agent runs it")
		}
	})

	var retiredAt time.Time
	harness.StepT(t, "web-03 comes back and catches up; then the old set is retired by itself", func(t *testing.T) {
		late.hostdLog = filepath.Join(late.dir, "hostd-after-restart.log")
		late.startHostd(t, story)
		ops.pollFleet(t, tickTimeout, "the automatic retirement", func(v fleetView) (bool, string) {
			onNew.observe(v)
			at, ok := ops.sim.RetiredAt(old.AccessKey)
			retiredAt = at
			return ok, fmt.Sprintf("hosts seen on the new key: %d", len(onNew.seen))
		})
		for _, h := range f.hosts {
			s, err := readAgentState(h.stateFile)
			if err != nil || s.AccessKey != rotated.AccessKey || !s.Started.Before(retiredAt) {
				t.Errorf("%s: the agent runs %+v (%v); want the new key since before the retirement at %s", h.name, s, err, retiredAt)
			}
			if seen, ok := onNew.seen[h.name]; ok && !seen.Before(retiredAt) {
				t.Errorf("%s was first seen on the new key at %s, after the retirement at %s", h.name, seen, retiredAt)
			}
		}
		logFleetFigures(t, rotated.Created, retiredAt, onNew)
	})

	harness.StepT(t, "no agent ever ran on the retired set", func(t *testing.T) {
		for _, h := range f.hosts {
			waitFor(t, h.name+"'s agent to prove its pair after the retirement", func() (bool, string) {
				s, err := readAgentState(h.stateFile)
				if err != nil {
					return false, err.Error()
				}
				if s.Lost != "" {
					t.Fatalf("%s's agent lost its pair %s: %s", h.name, s.AccessKey, s.Lost)
				}
				return s.Checked.After(retiredAt), fmt.Sprintf("%+v", s)
			})
			if p := h.propsOf(t, h.unitName); p.ActiveState != "active" || p.NRestarts != "0" {
				t.Errorf("%s: the agent's unit is %+v", h.name, p)
			}
		}
		f.hosts[0].checkNoSecrets(t)
	})

	harness.StepT(t, "force=true retires while web-05 still runs the old key, and warns naming it", func(t *testing.T) {
		down := f.host("web-05")
		down.stopHostd(t)
		ops.sh(t, "vault write -f /sigsci/rotate/sites/"+siteName).OK(t)
		next := primary(t, ops.sim)
		f.waitForView(t, "web-05 alone on the old key", func(v fleetView) bool {
			return len(v.OnPrimary) == fleetSize-1 && v.OnOldKeys[down.name] == rotated.AccessKey
		})
		var resp struct{ Warnings []string }
		out := ops.sh(t, "vault delete -format=json /sigsci/rotate/sites/"+siteName+" force=true").OK(t)
		if err := json.Unmarshal([]byte(out), &resp); err != nil {
			t.Fatalf("the forced retirement answered no JSON: %v\n%s", err, out)
		}
		if want := down.name + " (" + rotated.AccessKey + ")"; !strings.Contains(strings.Join(resp.Warnings, "\n"), want) {
			t.Errorf("the forced retirement does not warn naming %s:\n%s", want, out)
		}
		if _, ok := ops.sim.RetiredAt(rotated.AccessKey); !ok || primary(t, ops.sim).AccessKey != next.AccessKey {
			t.Fatalf("force=true did not retire %s: %+v", rotated.AccessKey, ops.sim.KeySets(harness.CorpID, siteName))
		}
		// What the warning was about: web-05's agent loses its pair.
		waitFor(t, "web-05's agent to lose its pair", func() (bool, string) {
			s, err := readAgentState(down.stateFile)
			return err == nil && s.Lost == "retired", fmt.Sprintf("%+v %v", s, err)
		})
	})
}

// logFleetFigures logs how long the hosts took from the rotation to their
// first report of the new key, and to the retirement.
func logFleetFigures(t *testing.T, rotated, retired time.Time, on *onKeySince) {
	t.Helper()
	var waits []time.Duration
	for _, seen := range on.seen {
		waits = append(waits, seen.Sub(rotated))
	}
	slices.Sort(waits)
	if len(waits) == 0 {
		return
	}
	t.Logf("rotation to a host's report of the new key: median %s, max %s over %d hosts (%s); to the automatic retirement: %s",
		waits[len(waits)/2].Round(time.Second), waits[len(waits)-1].Round(time.Second), len(waits),
		strings.Join(slices.Sorted(maps.Keys(on.seen)), ","), retired.Sub(rotated).Round(time.Second))
}

// Command bench measures hostd side by side with Vault Agent, the tool WAF
// hosts would otherwise run (make bench).
//
// Each trial sets up the same world: the Signal Sciences simulator, a Vault
// dev server with a file audit device, the plugin registered and mounted the
// documented way, a role, one copied site, and an AppRole with the host policy
// (packaging/vault/approle-example.sh). One tool then logs in with that
// AppRole's role-id and secret-id files and renders templates/agent.ctmpl to a
// file, re-reading every -refresh; no unit is restarted and no command runs.
// The site's keys are rotated -rotations times, each after a different delay
// so the rotations fall at different points of the tool's refresh cycle. The
// tools take turns, -runs trials each, one at a time.
//
// The table on standard output compares binary size, resident memory and CPU
// time (from /proc), how long a rotation takes to reach the rendered file, the
// requests each tool made to Vault (from the audit log) and what each leaves
// on disk. Progress goes to standard error. Nothing here asserts a speed.
//
// A fleet trial per tool follows (fleet.go): -fleet hosts of the site, each
// with its own instance of the tool, and a role with auto_retire; it times a
// rotation to every host's file, to every host's report in Vault, and to the
// automatic retirement of the old set, and counts Vault requests per host
// per hour, reports included.
//
// Then, at corp scale (-copy-sites, -read-clients; 0 skips each): a corp of
// 5,000 sites is copied with the documented command against a simulator that
// answers in 100 ms and allows 50 calls/s, and the time until every site is
// stored is compared with the least time that rate allows; and 32 clients
// read one site's keys for a while, then a KV v2 secret holding the same data
// on the same server, and the two rates are compared.
//
// It owns only the processes and temporary directories of its trials, and
// stops and removes them when it ends or is interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

// options are the command-line settings of one bench run.
type options struct {
	runs         int
	rotations    int
	refresh      time.Duration // both tools' re-read interval
	mountRefresh time.Duration // the plugin's refresh_interval: the ttl hint in every creds read
	poll         time.Duration // how often the rendered file is read

	fleet          int // hosts of the fleet trial; 0 skips it
	fleetRotations int

	tools bool // run the hostd vs Vault Agent trials, and the fleet trials
	scale scaleOptions
}

func main() {
	var o options
	flag.IntVar(&o.runs, "runs", 3, "trials per tool")
	flag.IntVar(&o.rotations, "rotations", 5, "key rotations per trial")
	flag.DurationVar(&o.refresh, "refresh", 5*time.Second,
		"re-read interval of both tools (hostd template_config.refresh_interval, Vault Agent template_config.static_secret_render_interval)")
	flag.DurationVar(&o.mountRefresh, "mount-refresh", 5*time.Second,
		"the plugin's refresh_interval (sigsci/config), returned with every read as the ttl and rotation_period hints; the plugin's default is 60s")
	flag.DurationVar(&o.poll, "poll", 20*time.Millisecond, "how often the rendered file is read while waiting for a new key")
	flag.IntVar(&o.fleet, "fleet", 10, "hosts of the fleet trial (one trial per tool); 0 skips it")
	flag.IntVar(&o.fleetRotations, "fleet-rotations", 2, "rotations per fleet trial, each waiting for auto_retire (about a minute)")
	flag.BoolVar(&o.tools, "tools", true, "run the hostd vs Vault Agent trials and the fleet trials")
	flag.IntVar(&o.scale.copySites, "copy-sites", 5000, "sites of the corp copied at scale (0 skips the copy)")
	flag.DurationVar(&o.scale.copyLatency, "copy-latency", 100*time.Millisecond, "latency of every API call during the copy")
	flag.IntVar(&o.scale.copyRate, "copy-rate", 50, "API calls per second the simulator allows during the copy")
	flag.IntVar(&o.scale.readClients, "read-clients", 32, "concurrent clients of the read comparison (0 skips it)")
	flag.DurationVar(&o.scale.readFor, "read-for", 4*time.Second, "how long each kind of read is measured in a round")
	flag.IntVar(&o.scale.readRounds, "read-rounds", 3, "rounds of creds reads then KV v2 reads")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	os.Exit(harness.RunProgram("bench", func(t testing.TB) { bench(t, o) }))
}

func (o options) check() error {
	switch {
	case o.runs < 1 || o.rotations < 1:
		return fmt.Errorf("-runs and -rotations must be at least 1")
	case o.fleet < 0 || o.fleet > 100 || (o.fleet > 0 && o.fleetRotations < 1):
		return fmt.Errorf("-fleet must be between 0 and 100, with -fleet-rotations at least 1")
	case o.refresh < 5*time.Second || o.mountRefresh < 5*time.Second:
		return fmt.Errorf("-refresh and -mount-refresh must be at least 5s (hostd's and the plugin's minimum)")
	case o.poll < time.Millisecond || o.poll > 100*time.Millisecond:
		return fmt.Errorf("-poll must be between 1ms and 100ms")
	case o.scale.copySites < 0 || o.scale.readClients < 0 || o.scale.copyLatency < 0:
		return fmt.Errorf("-copy-sites, -read-clients and -copy-latency must not be negative")
	case o.scale.copySites > 0 && o.scale.copyRate < 1:
		return fmt.Errorf("-copy-rate must be at least 1")
	case o.scale.readClients > 0 && (o.scale.readFor < time.Second || o.scale.readRounds < 1):
		return fmt.Errorf("-read-for must be at least 1s and -read-rounds at least 1")
	}
	return nil
}

// bench builds the programs, runs the trials and prints the table.
func bench(t testing.TB, o options) {
	programs := buildPrograms(t)
	if o.tools {
		compareTools(t, programs, o)
	}
	if o.scale.copySites > 0 || o.scale.readClients > 0 {
		var r scaleResult
		harness.Step(t, "scale", func(t testing.TB) { r = runScale(t, programs, o.scale) })
		printScale(os.Stdout, o.scale, r)
	}
}

// compareTools runs the trials of hostd and Vault Agent and prints the table.
func compareTools(t testing.TB, programs *harness.Programs, o options) {
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	tools := []tool{hostdTool(programs), vaultAgentTool(programs)}
	results := make(map[string][]trialResult)
	for run := 1; run <= o.runs; run++ {
		order := tools
		if run%2 == 0 { // take turns going first
			order = []tool{tools[1], tools[0]}
		}
		for _, tl := range order {
			harness.Step(t, fmt.Sprintf("%s-%d", tl.short, run), func(t testing.TB) {
				results[tl.name] = append(results[tl.name], runTrial(t, programs, root, tl, o))
			})
		}
	}
	printReport(os.Stdout, o, vaultVersion(t, programs.Vault), tools, results)
	if o.fleet == 0 {
		return
	}
	fleets := make(map[string][]fleetResult)
	for _, tl := range tools {
		harness.Step(t, "fleet-"+tl.short, func(t testing.TB) {
			fleets[tl.name] = append(fleets[tl.name], runFleetTrial(t, programs, root, tl, o))
		})
	}
	printFleetReport(os.Stdout, o, tools, fleets)
}

// buildPrograms finds the cached Vault (building it if needed) and builds the
// plugin and hostd as they ship (harness.BuildCommands), so that the binary
// sizes compare what is shipped.
func buildPrograms(t testing.TB) *harness.Programs {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Minute)
	defer cancel()
	vault, err := harness.BuildVault(ctx, os.Stderr)
	if err != nil {
		harness.Unavailable(t, "%v", err)
	}
	bin := t.TempDir()
	if err := harness.BuildCommands(ctx, bin, "vault-plugin-sigsci", "hostd"); err != nil {
		t.Fatalf("building the plugin and hostd: %v", err)
	}
	return &harness.Programs{Vault: vault, Bin: bin}
}

func vaultVersion(t testing.TB, vault string) string {
	out, err := exec.CommandContext(t.Context(), vault, "version").Output()
	if err != nil {
		t.Fatalf("vault version: %v", err)
	}
	// "Vault v1.19.0, built ...": a local build stamps no real date.
	version, _, _ := strings.Cut(strings.TrimSpace(string(out)), ",")
	return version
}

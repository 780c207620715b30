package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
)

// The fleet trial: -fleet hosts of one site, each its own instance of the
// tool, and a role with auto_retire. Each rotation is timed to every host's
// file, to every host's report in Vault (hostd reports; Vault Agent cannot)
// and to the retirement of the old set by auto_retire, which runs on Vault's
// periodic tick, about once a minute. Without reports the guard waits for
// retire_min_overlap (2 x the plugin's refresh_interval) after the rotation.

// fleetResult is what one fleet trial of one tool measured.
type fleetResult struct {
	hosts     int
	toFile    []time.Duration // per host and rotation: rotate returned -> new key in the host's file
	toReport  []time.Duration // per host and rotation: -> the host's report of the new key in Vault
	toAll     []time.Duration // per rotation: -> every host reports the new key
	toRetired []time.Duration // per rotation: -> the old set retired by auto_retire
	requests  requestCount    // every host's requests to Vault while all ran
	steady    time.Duration   // how long all ran after the first render
}

// fleetHost is one host of the fleet trial and its running tool.
type fleetHost struct {
	host
	p *process
}

// runFleetTrial sets up a fresh world with auto_retire on, runs the tool on
// every host of the fleet through the rotations and measures them.
func runFleetTrial(t testing.TB, programs *harness.Programs, root string, tl tool, o options) fleetResult {
	t.Helper()
	w := newWorld(t, programs, root, o.mountRefresh)
	w.sh(t, "vault write sigsci/role/"+roleName+" auto_retire=true")
	wait := 3*max(o.refresh, o.mountRefresh) + 30*time.Second
	hosts := make([]fleetHost, o.fleet)
	for i := range hosts {
		hosts[i].host = w.newHost(t.TempDir(), root, o.refresh, fmt.Sprintf("%s-%02d.log", tl.short, i+1))
		hosts[i].host.name = fmt.Sprintf("web-%02d", i+1)
		hosts[i].p = startTool(t, tl, hosts[i].host)
	}
	first := w.primary(t).AccessKey
	started := time.Now()
	for _, h := range hosts {
		waitRendered(t, h.p, h.host, first, started, wait, o.poll)
	}
	steadyFrom := time.Now()
	t.Logf("%s: %d hosts rendered the keys", tl.name, len(hosts))

	r := fleetResult{hosts: len(hosts)}
	for k := range o.fleetRotations {
		old := w.primary(t)
		ks := w.rotate(t)
		returned := time.Now()
		files, reports, retired := waitFleet(t, w, hosts, ks.AccessKey, old.AccessKey, tl.reports, o.poll)
		for _, h := range hosts {
			r.toFile = append(r.toFile, files[h.name].Sub(returned))
			if tl.reports {
				r.toReport = append(r.toReport, reports[h.name].Sub(returned))
			}
		}
		if tl.reports {
			r.toAll = append(r.toAll, latest(reports).Sub(returned))
		}
		r.toRetired = append(r.toRetired, retired.Sub(returned))
		t.Logf("%s rotation %d/%d: every file in %s, retired by auto_retire %s after the rotation",
			tl.name, k+1, o.fleetRotations, latest(files).Sub(returned).Round(time.Millisecond), retired.Sub(returned).Round(time.Second))
	}
	stopped := time.Now()
	for _, h := range hosts {
		h.p.stop(t)
	}
	r.steady = stopped.Sub(steadyFrom)
	var err error
	credsPath := "sigsci/creds/" + roleName + "/sites/" + siteName
	if r.requests, err = countRequests(w.auditLog, credsPath, steadyFrom, stopped); err != nil {
		t.Fatal(err)
	}
	return r
}

// waitFleet polls until every host's file holds accessKey, every host
// reports it (when the tool reports) and the old set is retired at the API,
// and returns when each was first seen.
func waitFleet(t testing.TB, w *world, hosts []fleetHost, accessKey, old string, reports bool, poll time.Duration) (files, reported map[string]time.Time, retired time.Time) {
	t.Helper()
	files, reported = map[string]time.Time{}, map[string]time.Time{}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for n := 0; ; n++ {
		now := time.Now()
		for _, h := range hosts {
			h.p.alive(t)
			if _, ok := files[h.name]; !ok {
				if data, err := os.ReadFile(h.destination); err == nil && strings.Contains(string(data), accessKey) {
					files[h.name] = now
				}
			}
		}
		if reports && n%5 == 0 { // the fleet view is a Vault request: read it less often
			for _, name := range onPrimary(t, w, accessKey) {
				if _, ok := reported[name]; !ok {
					reported[name] = now
				}
			}
		}
		if at, ok := w.sim.RetiredAt(old); ok && retired.IsZero() {
			retired = at
		}
		if len(files) == len(hosts) && (!reports || len(reported) == len(hosts)) && !retired.IsZero() {
			return files, reported, retired
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for the fleet: %d/%d files, %d/%d reports, retired %v", len(files), len(hosts), len(reported), len(hosts), !retired.IsZero())
		case <-tick.C:
		}
	}
}

// onPrimary reads the site's fleet view with the operator's token and
// returns the hosts that report accessKey as the primary.
func onPrimary(t testing.TB, w *world, accessKey string) []string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, w.vault.Addr+"/v1/sigsci/fleet/"+roleName+"/sites/"+siteName, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", w.vault.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("reading the fleet view: %v", err)
	}
	defer resp.Body.Close()
	var view struct {
		Data struct {
			PrimaryAccessKey string   `json:"primary_access_key"`
			OnPrimary        []string `json:"on_primary"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("reading the fleet view: HTTP %d: %v", resp.StatusCode, err)
	}
	if view.Data.PrimaryAccessKey != accessKey {
		return nil
	}
	return view.Data.OnPrimary
}

func latest(seen map[string]time.Time) time.Time {
	var last time.Time
	for _, at := range seen {
		last = laterOf(last, at)
	}
	return last
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// printFleetReport writes the fleet table: one row per figure, one column
// per tool.
func printFleetReport(out io.Writer, o options, tools []tool, results map[string][]fleetResult) {
	fmt.Fprintf(out, "\nfleet: %d hosts of one site, each running the tool; %d rotation(s) per trial, auto_retire on; p50 / p95 / max\n", o.fleet, o.fleetRotations)
	fmt.Fprintf(out, "auto_retire runs on Vault's periodic tick (about once a minute); without reports it waits retire_min_overlap (%s) after the rotation\n\n", 2*o.mountRefresh)
	tw := newTable(out, tools)
	row := func(name string, cell func(tl tool, rs []fleetResult) string) {
		tw.row(name, func(tl tool) string { return cell(tl, results[tl.name]) })
	}
	pooled := func(f func(fleetResult) []time.Duration) func(tool, []fleetResult) string {
		return func(_ tool, rs []fleetResult) string {
			var all []time.Duration
			for _, r := range rs {
				all = append(all, f(r)...)
			}
			if len(all) == 0 {
				return "cannot report"
			}
			return percentiles(all) + fmt.Sprintf(" (n=%d)", len(all))
		}
	}
	row("rotate returned -> new key in a host's file", pooled(func(r fleetResult) []time.Duration { return r.toFile }))
	row("rotate returned -> the host's report in Vault", pooled(func(r fleetResult) []time.Duration { return r.toReport }))
	row("rotate returned -> every host reports", pooled(func(r fleetResult) []time.Duration { return r.toAll }))
	row("rotate returned -> old set retired by auto_retire", pooled(func(r fleetResult) []time.Duration { return r.toRetired }))
	perHostHour := func(count func(requestCount) int) func(tool, []fleetResult) string {
		return func(_ tool, rs []fleetResult) string {
			var vs []float64
			for _, r := range rs {
				vs = append(vs, float64(count(r.requests))/float64(r.hosts)/r.steady.Hours())
			}
			return spread(vs, func(v float64) string { return fmt.Sprintf("%.0f", v) })
		}
	}
	row("Vault requests per host per hour", perHostHour(func(c requestCount) int { return c.total }))
	row("  of which reports", perHostHour(func(c requestCount) int { return c.withPrefix("sigsci/fleet/") }))
	tw.flush()
}

// percentiles formats "p50 / p95 / max" of vs.
func percentiles(vs []time.Duration) string {
	sorted := slices.Clone(vs)
	slices.Sort(sorted)
	at := func(q float64) time.Duration { return sorted[int(q*float64(len(sorted)-1)+0.5)] }
	return seconds(at(0.5)) + " / " + seconds(at(0.95)) + " / " + seconds(sorted[len(sorted)-1])
}

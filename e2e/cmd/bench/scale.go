package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/e2e/harness"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// The corp-scale figures: a copy of all sites of a large corp against an
// API that is slow and rate limited, compared with the least time the rate
// limit allows; and creds reads per second compared with Vault's own KV v2
// reads of the same data, on the same dev server.

// sitesPerListPage is the page size of the API's site list: one list call
// per this many sites.
const sitesPerListPage = 100

// scaleOptions are the settings of the corp-scale figures.
type scaleOptions struct {
	copySites   int           // sites of the corp; 0 skips the copy
	copyLatency time.Duration // of every API call
	copyRate    int           // API calls per second the API allows
	readClients int           // concurrent readers; 0 skips the reads
	readFor     time.Duration // how long each kind of read is measured, per round
	readRounds  int           // rounds of creds reads then KV reads, in turn
}

// scaleResult is what the corp-scale run measured.
type scaleResult struct {
	copyTook      time.Duration // the copy command ran → the copy reported it had finished
	copyStored    int           // sites stored when it finished
	copyFailed    int           // sites it reported failed
	copyAttempts  int           // API calls the simulator saw, refused ones included
	credsPerSec   float64
	kvPerSec      float64
	readPayloadKB float64
}

// rateLimitBound is the least time a copy of sites can take when the API
// allows rate calls per second: one key read per site and one list call
// per page of sites.
func rateLimitBound(sites, rate int) time.Duration {
	calls := sites + (sites+sitesPerListPage-1)/sitesPerListPage
	return time.Duration(float64(calls) / float64(rate) * float64(time.Second))
}

// runScale builds the corp, copies it, and measures the reads.
func runScale(t testing.TB, programs *harness.Programs, o scaleOptions) scaleResult {
	t.Helper()
	sites := make([]sigscisim.SiteSeed, max(o.copySites, 1))
	for i := range sites {
		sites[i] = sigscisim.SiteSeed{Name: fmt.Sprintf("site-%05d", i)}
	}
	sim := harness.StartSimulator(t, sigscisim.Seed{Corps: []sigscisim.CorpSeed{{
		Name:  corpName,
		Users: []sigscisim.UserSeed{{Email: userEmail, Token: apiToken}},
		Sites: sites,
	}}})
	vault := harness.StartVault(t, programs)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/token.txt", []byte(apiToken), 0o600); err != nil {
		t.Fatal(err)
	}
	mountPlugin(t, vault, programs)
	vault.Shell(t, dir, "vault write /sigsci/role/"+roleName+" corp="+corpName+" email="+userEmail+" api_url="+sim.APIURL+" token=@token.txt").OK(t)
	api := &vaultHTTP{addr: vault.Addr, token: vault.Token, client: &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: max(o.readClients, 2)},
		Timeout:   time.Minute,
	}}

	var r scaleResult
	if o.copySites > 0 {
		sim.SetLatency(o.copyLatency)
		sim.SetRateLimit(o.copyRate)
		r.copyTook, r.copyStored, r.copyFailed = copyAll(t, vault, dir, api)
		r.copyAttempts = sim.Calls(sigscisim.EndpointListSites) + sim.Calls(sigscisim.EndpointPrimaryKeys)
		sim.SetLatency(0)
		sim.SetRateLimit(0)
		t.Logf("copied %d sites in %s (%d API calls made)", r.copyStored, r.copyTook.Round(time.Millisecond), r.copyAttempts)
	} else {
		vault.Shell(t, dir, "vault write -f /sigsci/creds/"+roleName+"/sites/"+sites[0].Name).OK(t)
	}
	if o.readClients > 0 {
		r.credsPerSec, r.kvPerSec, r.readPayloadKB = compareReads(t, api, sites[0].Name, o)
	}
	return r
}

// mountPlugin registers and mounts the plugin the documented way.
func mountPlugin(t testing.TB, vault *harness.Vault, programs *harness.Programs) {
	t.Helper()
	vault.Shell(t, programs.Bin, "vault plugin register -sha256=$(sha256sum vault-plugin-sigsci|cut -c-64) secret vault-plugin-sigsci").OK(t)
	vault.Shell(t, programs.Bin, "vault secrets enable -path=sigsci vault-plugin-sigsci").OK(t)
}

// copyAll runs the documented copy of all sites and waits, watching the
// all-sites read, until the copy has ended. The command itself answers
// within Vault's request deadline; the copy goes on in the background.
func copyAll(t testing.TB, vault *harness.Vault, dir string, api *vaultHTTP) (took time.Duration, stored, failed int) {
	t.Helper()
	start := time.Now()
	vault.Shell(t, dir, "vault write -f /sigsci/creds/"+roleName+"/sites/").OK(t)
	t.Logf("the copy command answered after %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Minute)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		var read struct {
			Data struct {
				Total int `json:"total"`
				Copy  struct {
					State  string         `json:"state"`
					Done   int            `json:"done"`
					Failed map[string]any `json:"failed"`
				} `json:"copy"`
			} `json:"data"`
		}
		if err := api.get(ctx, "sigsci/creds/"+roleName+"/sites/?limit=1", &read); err != nil {
			t.Fatalf("watching the copy: %v", err)
		}
		if read.Data.Copy.State != "running" {
			if read.Data.Copy.State != "finished" {
				t.Fatalf("the copy ended %q", read.Data.Copy.State)
			}
			return time.Since(start), read.Data.Total, len(read.Data.Copy.Failed)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("the copy did not end: %v", ctx.Err())
		}
	}
}

// compareReads measures creds reads of one site, then KV v2 reads of a
// secret holding the same data, each with readClients concurrent readers.
func compareReads(t testing.TB, api *vaultHTTP, site string, o scaleOptions) (creds, kv, payloadKB float64) {
	t.Helper()
	credsPath := "sigsci/creds/" + roleName + "/sites/" + site
	var read struct {
		Data map[string]any `json:"data"`
	}
	if err := api.get(t.Context(), credsPath, &read); err != nil {
		t.Fatalf("reading %s: %v", credsPath, err)
	}
	body, err := json.Marshal(map[string]any{"data": read.Data})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.put(t.Context(), "secret/data/bench-keys", body); err != nil {
		t.Fatalf("writing the KV v2 secret: %v", err)
	}
	// A first round warms both up (the plugin's heap and connections); then
	// the two kinds take turns, as the machine's load drifts, and each rate
	// is the mean over its rounds.
	readsPerSecond(t, api, credsPath, o)
	readsPerSecond(t, api, "secret/data/bench-keys", o)
	for round := range o.readRounds {
		c := readsPerSecond(t, api, credsPath, o)
		k := readsPerSecond(t, api, "secret/data/bench-keys", o)
		t.Logf("round %d: creds %.0f/s, KV v2 %.0f/s", round+1, c, k)
		creds += c / float64(o.readRounds)
		kv += k / float64(o.readRounds)
	}
	return creds, kv, float64(len(body)) / 1024
}

// readsPerSecond reads path with readClients concurrent readers for readFor
// and returns the rate of successful reads.
func readsPerSecond(t testing.TB, api *vaultHTTP, path string, o scaleOptions) float64 {
	t.Helper()
	var count atomic.Int64
	var firstErr error
	var errOnce sync.Once
	run := func(d time.Duration) time.Duration {
		ctx, cancel := context.WithTimeout(t.Context(), d)
		defer cancel()
		var wg sync.WaitGroup
		start := time.Now()
		for range o.readClients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					err := api.get(ctx, path, nil)
					switch {
					case err == nil:
						count.Add(1)
					case err != nil && ctx.Err() == nil:
						errOnce.Do(func() { firstErr = err })
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	took := run(o.readFor)
	if firstErr != nil {
		t.Fatalf("reading %s: %v", path, firstErr)
	}
	return float64(count.Load()) / took.Seconds()
}

// vaultHTTP is a client of Vault's HTTP API with the root token.
type vaultHTTP struct {
	addr, token string
	client      *http.Client
}

func (v *vaultHTTP) get(ctx context.Context, path string, into any) error {
	return v.do(ctx, http.MethodGet, path, nil, into)
}

func (v *vaultHTTP) put(ctx context.Context, path string, body []byte) error {
	return v.do(ctx, http.MethodPut, path, body, nil)
}

func (v *vaultHTTP) do(ctx context.Context, method, path string, body []byte, into any) error {
	req, err := http.NewRequestWithContext(ctx, method, v.addr+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", v.token)
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: status %d", method, path, resp.StatusCode)
	}
	if into == nil {
		return nil
	}
	return json.Unmarshal(raw, into)
}

// printScale writes the corp-scale figures.
func printScale(out io.Writer, o scaleOptions, r scaleResult) {
	if o.copySites > 0 {
		bound := rateLimitBound(o.copySites, o.copyRate)
		fmt.Fprintf(out, "\ncopy of all sites: %d sites, %s per API call, the API allows %d calls/s\n",
			o.copySites, o.copyLatency, o.copyRate)
		fmt.Fprintf(out, "  every site stored after     %.1fs (%d stored, %d failed; %d API calls made, refused ones included)\n",
			r.copyTook.Seconds(), r.copyStored, r.copyFailed, r.copyAttempts)
		fmt.Fprintf(out, "  rate-limit bound            %.1fs (%d calls / %d per s)\n",
			bound.Seconds(), o.copySites+(o.copySites+sitesPerListPage-1)/sitesPerListPage, o.copyRate)
		fmt.Fprintf(out, "  ratio to the bound          %.2f (goal: at most 1.25)\n", r.copyTook.Seconds()/bound.Seconds())
	}
	if o.readClients > 0 {
		fmt.Fprintf(out, "\nreads of the same %.1f KB, %d concurrent clients, %d rounds of %s each, one dev server\n",
			r.readPayloadKB, o.readClients, o.readRounds, o.readFor)
		fmt.Fprintf(out, "  sigsci/creds/<role>/sites/<site>  %.0f reads/s\n", r.credsPerSec)
		fmt.Fprintf(out, "  KV v2 secret/data/<name>          %.0f reads/s\n", r.kvPerSec)
		fmt.Fprintf(out, "  ratio creds / KV v2               %.2f (goal: at least 0.5)\n", r.credsPerSec/r.kvPerSec)
	}
}

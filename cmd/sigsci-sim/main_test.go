package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/internal/selfexec"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci/sigscisim"
)

// The test binary doubles as the simulator in the processes startProcess
// begins, so the signal handling of the real main is tested in a real process.
func TestMain(m *testing.M) { selfexec.Main(m, main) }

// processWait bounds the simulator's start and its exit on a signal.
const processWait = 30 * time.Second

// startProcess runs the simulator with args (selfexec.Start) and returns it
// with its base URL once it printed it.
func startProcess(t *testing.T, args ...string) (*selfexec.Process, string) {
	t.Helper()
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := selfexec.Start(t, selfexec.Options{Stdout: w}, args...)
	w.Close() // the process has its own copy: stdout ends when it exits
	lines := make(chan string, 1)
	go func() {
		defer stdout.Close()
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case line := <-lines:
		if !strings.HasPrefix(line, "http://127.0.0.1:") {
			t.Fatalf("first stdout line = %q; stderr: %s", line, p.Stderr)
		}
		return p, line
	case <-time.After(processWait):
		t.Fatalf("no address printed; stderr: %s", p.Stderr)
	}
	return nil, ""
}

func TestProcessServesFlagSeedAndStopsOnSignals(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token.txt")
	if err := os.WriteFile(tokenFile, []byte("sim-token-abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		addrFile := filepath.Join(dir, "addr")
		sim, base := startProcess(t, "-listen", "127.0.0.1:0", "-corp", "acme", "-user", "ops@acme.test",
			"-token-file", tokenFile, "-sites", "www, api", "-addr-file", addrFile, "-v")
		if b, err := os.ReadFile(addrFile); err != nil || strings.TrimSpace(string(b)) != base {
			t.Errorf("address file = %q, %v; want %q", b, err, base)
		}
		c, err := sigsci.New(sigsci.Config{BaseURL: base + sigscisim.APIPrefix, Email: "ops@acme.test", Token: "sim-token-abc"})
		if err != nil {
			t.Fatal(err)
		}
		sites, err := c.ListSites(context.Background(), "acme")
		if err != nil || len(sites) != 2 || sites[0].Name != "www" || sites[1].Name != "api" {
			t.Fatalf("sites = %v, %v", sites, err)
		}
		keys, err := c.PrimaryKeys(context.Background(), "acme", "api")
		if err != nil {
			t.Fatal(err)
		}
		body := fmt.Sprintf(`{"accesskeyid":%q,"secretaccesskey":%q}`, keys.AccessKey, keys.SecretKey)
		resp, err := http.Post(base+"/sim/agent/check", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var check sigscisim.AgentCheckResult
		_ = json.NewDecoder(resp.Body).Decode(&check)
		resp.Body.Close()
		if !check.Live || check.Site != "api" {
			t.Errorf("agent check = %+v", check)
		}

		sim.Signal(t, sig)
		if err := sim.Wait(t, sig.String(), processWait); err != nil {
			t.Errorf("%v: exit = %v; stderr: %s", sig, err, sim.Stderr)
		}
		log := sim.Stderr.String()
		if !strings.Contains(log, "stopped") || !strings.Contains(log, "GET /api/v0/corps/acme/sites 200") {
			t.Errorf("%v: stderr = %s", sig, log)
		}
		if strings.Contains(log, "sim-token-abc") || strings.Contains(log, keys.SecretKey) {
			t.Errorf("stderr shows a secret: %s", log)
		}
	}
}

func TestProcessLoadsSeedFileWithFaults(t *testing.T) {
	seed := `{"corps":[{"name":"acme","users":[{"email":"a@acme.test","token":"t1"}],"sites":[{"name":"www"}]},
	                   {"name":"globex","users":[{"email":"b@globex.test","token":"t2"}],"sites":[{"name":"shop"},{"name":"blog"}]}],
	          "faults":{"failNext":1,"failStatus":503}}`
	path := filepath.Join(t.TempDir(), "seed.json")
	if err := os.WriteFile(path, []byte(seed), 0o600); err != nil {
		t.Fatal(err)
	}
	sim, base := startProcess(t, "-listen", "127.0.0.1:0", "-seed", path)
	c, err := sigsci.New(sigsci.Config{BaseURL: base + sigscisim.APIPrefix, Email: "b@globex.test", Token: "t2",
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sites, err := c.ListSites(context.Background(), "globex")
	if err != nil || len(sites) != 2 {
		t.Fatalf("sites = %v, %v", sites, err)
	}
	resp, err := http.Get(base + "/sim/calls")
	if err != nil {
		t.Fatal(err)
	}
	var calls map[string]int
	_ = json.NewDecoder(resp.Body).Decode(&calls)
	resp.Body.Close()
	if calls[sigscisim.EndpointListSites] != 2 {
		t.Errorf("calls = %v, want the seeded failure and its retry", calls)
	}
	sim.Signal(t, syscall.SIGTERM)
	if err := sim.Wait(t, "SIGTERM", processWait); err != nil {
		t.Errorf("exit = %v", err)
	}
}

func TestRunStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-corp", "c", "-user", "u", "-token", "t", "-sites", "s"}, w, io.Discard)
		w.Close()
	}()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "http://127.0.0.1:") {
		t.Fatalf("line = %q, %v", line, err)
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return")
	}
}

func TestRunRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	badSeed := filepath.Join(dir, "bad.json")
	_ = os.WriteFile(badSeed, []byte(`{"corps":[{"name":"Not Valid"}]}`), 0o600)
	notJSON := filepath.Join(dir, "not.json")
	_ = os.WriteFile(notJSON, []byte(`corps: x`), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{nil, "give -seed"},
		{[]string{"-seed", badSeed}, `corp name "Not Valid" is invalid`},
		{[]string{"-seed", notJSON}, "not valid JSON"},
		{[]string{"-seed", filepath.Join(dir, "missing.json")}, "reading seed"},
		{[]string{"-seed", badSeed, "-corp", "c"}, "cannot be combined"},
		{[]string{"-corp", "c", "-user", "u"}, "are all needed"},
		{[]string{"-corp", "c", "-user", "u", "-token", "t", "-token-file", "x"}, "not both"},
		{[]string{"-corp", "C", "-user", "u", "-token", "t"}, "invalid"},
		{[]string{"-corp", "c", "-user", "u", "-token", "t", "-listen", "0.0.0.0:0"}, "only loopback"},
		{[]string{"-corp", "c", "-user", "u", "-token", "t", "-listen", "nonsense"}, "-listen"},
		{[]string{"-corp", "c", "-user", "u", "-token", "t", "-rate-limit", "-2"}, "rateLimit must not be negative"},
		{[]string{"extra"}, "unexpected arguments"},
	}
	for _, tc := range cases {
		var stdout bytes.Buffer
		err := run(context.Background(), tc.args, &stdout, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.args, err, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%q: printed %q although it did not start", tc.args, stdout.String())
		}
	}
	if err := run(context.Background(), []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestExampleSeedLoads(t *testing.T) {
	seed, err := sigscisim.LoadSeed("seed.example.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(seed.Corps) != 2 || len(seed.Corps[0].Sites) != 2 || seed.Faults.RateLimit != 20 {
		t.Errorf("example seed = %+v", seed)
	}
}

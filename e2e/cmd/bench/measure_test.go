package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSampleProcReadsThisProcess(t *testing.T) {
	before, err := sampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if before.rssKiB <= 0 || before.hwmKiB < before.rssKiB {
		t.Fatalf("VmRSS %d kB, VmHWM %d kB: want 0 < VmRSS <= VmHWM", before.rssKiB, before.hwmKiB)
	}
	deadline := time.Now().Add(10 * time.Second)
	for x := 0; ; x++ { // spend CPU until a tick or two shows up
		after, err := sampleProc(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if after.cpu > before.cpu {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU time stayed at %s while this test spun", after.cpu)
		}
		for i := 0; i < 1_000_000; i++ {
			x ^= i
		}
	}
}

func TestCountRequestsKeepsTheToolsRequestsInTheWindow(t *testing.T) {
	const creds = "sigsci/creds/vault-user/sites/www"
	log := strings.Join([]string{
		`{"time":"2026-01-01T10:00:00Z","type":"request","auth":{"policies":["root"]},"request":{"path":"sys/audit/file"}}`,
		`{"time":"2026-01-01T10:00:01Z","type":"request","auth":{},"request":{"path":"sys/audit/test"}}`,
		`{"time":"2026-01-01T10:00:10Z","type":"request","auth":{},"request":{"path":"auth/approle/login"}}`,
		`{"time":"2026-01-01T10:00:10Z","type":"response","auth":{"policies":["default","sigsci-host-www"]},"request":{"path":"auth/approle/login"}}`,
		`{"time":"2026-01-01T10:00:11Z","type":"request","auth":{"policies":["default","sigsci-host-www"]},"request":{"path":"` + creds + `"}}`,
		`{"time":"2026-01-01T10:00:12Z","type":"request","auth":{"policies":["root"]},"request":{"path":"sigsci/rotate/sites/www"}}`,
		`{"time":"2026-01-01T10:00:16Z","type":"request","auth":{"policies":["default","sigsci-host-www"]},"request":{"path":"` + creds + `"}}`,
		`{"time":"2026-01-01T10:00:17Z","type":"request","auth":{"policies":["default","sigsci-host-www"]},"request":{"path":"auth/token/renew-self"}}`,
		`{"time":"2026-01-01T10:00:30Z","type":"request","auth":{"policies":["default","sigsci-host-www"]},"request":{"path":"` + creds + `"}}`,
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 1, 1, 10, 0, 5, 0, time.UTC)
	c, err := countRequests(path, creds, from, from.Add(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.total != 4 || c.creds != 2 || c.login != 1 {
		t.Errorf("total %d, creds %d, login %d; want 4, 2, 1", c.total, c.creds, c.login)
	}
	if c.byPath["auth/token/renew-self"] != 1 || c.byPath["auth/approle/login"] != 1 || len(c.byPath) != 2 {
		t.Errorf("other paths %v", c.byPath)
	}
	if gap := medianGap(c.credsReads); gap != 5*time.Second {
		t.Errorf("median gap between creds reads %s, want 5s", gap)
	}
}

func TestOnDiskFindsTokensAndKeys(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("agent.conf", `secretaccesskey = "secret-one"`)
	write("home/sink", "hvs.CAESIJ0123456789abcdefghijklmnop")
	write("config.hcl", `template { destination = "agent.conf" }`)
	tokens, keys, err := onDisk(dir, []string{"secret-one", "secret-two"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tokens, []string{"home/sink"}) || !slices.Equal(keys, []string{"agent.conf"}) {
		t.Fatalf("tokens in %v, keys in %v", tokens, keys)
	}
}

func TestSpreadShowsMinMedianMax(t *testing.T) {
	got := spread([]time.Duration{3 * time.Second, time.Second, 2 * time.Second, 10 * time.Second}, seconds)
	if got != "1.00s / 2.50s / 10.00s" {
		t.Fatalf("spread = %q", got)
	}
	if got := spread([]float64{7}, func(v float64) string { return "x" }); got != "x" {
		t.Fatalf("one value: %q", got)
	}
}

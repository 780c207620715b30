package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/status"
	"github.com/sigsci-keys/sigsci-keys/internal/poll"
	"github.com/sigsci-keys/sigsci-keys/internal/selfexec"
)

const waitFor = 15 * time.Second

// TestMain lets the tests run this test binary as hostd itself, to drive the
// real main with real signals.
// The test binary doubles as hostd in the processes startHostd begins.
func TestMain(m *testing.M) { selfexec.Main(m, main) }

// startHostd runs `hostd run -config config` as a process of its own with
// env added to the test's environment (selfexec.Start).
func startHostd(t *testing.T, config string, env ...string) *selfexec.Process {
	t.Helper()
	return selfexec.Start(t, selfexec.Options{Env: env}, "run", "-config", config)
}

func execute(args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "hostd.hcl")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func validConfig(dir string) string {
	return fmt.Sprintf(`vault { address = "http://127.0.0.1:1" }
auto_auth {
  method "token_file" { path = %q }
}
status { socket_path = %q }
telemetry { listen_address = "127.0.0.1:0" }
`, filepath.Join(dir, "token"), filepath.Join(dir, "hostd.sock"))
}

func TestVersion(t *testing.T) {
	code, out, _ := execute("version")
	if code != 0 || !strings.HasPrefix(out, "hostd 0.0.0-dev (go") {
		t.Errorf("version: %d %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"validate", "-nope"}, {"status", "extra"}, {"run", "-config"}} {
		if code, _, errOut := execute(args...); code != 2 || errOut == "" {
			t.Errorf("%q: exit %d, stderr %q; want 2 and a message", args, code, errOut)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := writeConfig(t, dir, validConfig(dir))
	code, out, errOut := execute("validate", "-config", good)
	if code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("valid file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if !strings.Contains(errOut, "warning: "+good+":1:1: No template blocks") {
		t.Errorf("warnings must be shown: %q", errOut)
	}

	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("vault {\n  address = \"vault\"\n}\nauto_auth {\n  method \"ldap\" {}\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = execute("validate", "-config", bad)
	if code != 1 || out != "" {
		t.Errorf("invalid file: exit %d, stdout %q", code, out)
	}
	for _, want := range []string{bad + ":2:3: Invalid vault address", bad + ":5:10: Unknown auth method", bad + ": 2 problem(s)"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}

	broken := filepath.Join(dir, "broken-template.hcl")
	if err := os.WriteFile(broken, []byte(validConfig(dir)+"template {\n  contents = \"{{ with secret \\\"kv/agent\\\" }\"\n  destination = \"/etc/a.conf\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = execute("validate", "-config", broken)
	if code != 1 || out != "" || !strings.Contains(errOut, broken+": template 1 (/etc/a.conf)") {
		t.Errorf("template syntax error: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	if code, _, errOut := execute("validate", "-config", filepath.Join(dir, "absent.hcl")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file: exit %d, %q", code, errOut)
	}
}

func TestRunRefusesAnInvalidConfiguration(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, dir, "vault {}\n")
	code, _, errOut := execute("run", "-config", path)
	if code != 1 || !strings.Contains(errOut, path+":1:1: Missing address") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// serveStatus serves st on a socket in a temporary directory.
func serveStatus(t *testing.T, st *status.State) string {
	t.Helper()
	return serveStatusWithRefresh(t, st, nil)
}

func serveStatusWithRefresh(t *testing.T, st *status.State, refresh func() error) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hostd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := status.Listen(ctx, path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); status.Serve(ctx, ln, status.NewHandler(st, refresh)) }()
	t.Cleanup(func() { cancel(); <-done })
	return path
}

func TestStatusExitCodes(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }

	healthy := status.NewState(status.Options{Version: "1.0.0", VaultAddress: "https://vault.example:8200", AuthMethod: "approle", Now: clock})
	healthy.Publish(event.Auth{Time: now, Method: "approle", OK: true, TokenExpiry: now.Add(time.Hour)})
	healthySock := serveStatus(t, healthy)

	unhealthy := status.NewState(status.Options{Version: "1.0.0", AuthMethod: "approle",
		Templates: []status.TemplateRef{{Destination: "/etc/sigsci/agent.conf"}}, Now: clock})
	unhealthySock := serveStatus(t, unhealthy)

	code, out, _ := execute("status", "-socket", healthySock)
	if code != 0 || !strings.Contains(out, "healthy") || !strings.Contains(out, "authenticated, token expires in 1h") {
		t.Errorf("healthy: exit %d\n%s", code, out)
	}

	code, out, _ = execute("status", "-socket", unhealthySock)
	if code != 1 || !strings.Contains(out, "UNHEALTHY") || !strings.Contains(out, "template /etc/sigsci/agent.conf: not rendered yet") {
		t.Errorf("unhealthy: exit %d\n%s", code, out)
	}

	code, out, _ = execute("status", "-json", "-socket", unhealthySock)
	var snap status.Snapshot
	if code != 1 || json.Unmarshal([]byte(out), &snap) != nil || snap.Templates[0].Destination != "/etc/sigsci/agent.conf" {
		t.Errorf("json: exit %d\n%s", code, out)
	}

	code, out, errOut := execute("status", "-socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 2 || out != "" || !strings.Contains(errOut, "cannot reach hostd") {
		t.Errorf("unreachable: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestDaemonProcess runs hostd as a real process: status answers, SIGHUP
// with a broken file keeps it running, SIGTERM stops it with exit code 0.
func TestDaemonProcess(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, dir, validConfig(dir))
	socket := filepath.Join(dir, "hostd.sock")
	hostd := startHostd(t, path)
	logs := hostd.Stderr

	waitStatus := func() {
		t.Helper()
		poll.Within(t, waitFor, 50*time.Millisecond, "hostd to answer on "+socket, func() (bool, string) {
			code, _, _ := execute("status", "-socket", socket, "-timeout", "1s")
			return code != 2, "logs:\n" + logs.String()
		})
	}
	waitStatus()
	if code, out, _ := execute("status", "-socket", socket); code != 1 || !strings.Contains(out, "NOT AUTHENTICATED") {
		t.Errorf("without Vault: exit %d\n%s", code, out)
	}

	writeConfig(t, dir, "vault {\n")
	hostd.Signal(t, syscall.SIGHUP)
	// The broken file is rejected and hostd keeps answering.
	poll.Within(t, waitFor, 20*time.Millisecond, "SIGHUP with a broken file to be reported", func() (bool, string) {
		return strings.Contains(logs.String(), "configuration reload rejected"), "logs:\n" + logs.String()
	})
	if !strings.Contains(logs.String(), path+":1:7: Unclosed configuration block") {
		t.Errorf("the rejected reload must name file:line:\n%s", logs.String())
	}
	waitStatus()

	hostd.Signal(t, syscall.SIGTERM)
	if err := hostd.Wait(t, "SIGTERM", waitFor); err != nil {
		t.Fatalf("hostd exited with %v; logs:\n%s", err, logs.String())
	}
	if _, err := os.Lstat(socket); err == nil {
		t.Error("socket left behind after SIGTERM")
	}
}

// TestRefreshWaitsForTheRenders: the daemon stand-in renders when asked, the
// way hostd's renderer does, one template fine and one failing.
func TestRefreshWaitsForTheRenders(t *testing.T) {
	st := status.NewState(status.Options{Templates: []status.TemplateRef{
		{Destination: "/etc/sigsci/agent.conf", Unit: "sigsci-agent.service"},
		{Destination: "/etc/sigsci/extra.conf"},
	}})
	renderAll := func(extraErr string) func() error {
		return func() error {
			go func() {
				now := time.Now()
				st.Publish(event.Render{Time: now, Template: "/etc/sigsci/agent.conf", Unit: "sigsci-agent.service", Changed: true})
				st.Publish(event.Render{Time: now, Template: "/etc/sigsci/extra.conf", Err: extraErr})
			}()
			return nil
		}
	}

	code, out, errOut := execute("refresh", "-socket", serveStatusWithRefresh(t, st, renderAll("")))
	if code != 0 || !strings.Contains(out, "/etc/sigsci/agent.conf\tchanged") || !strings.Contains(out, "/etc/sigsci/extra.conf\tunchanged") {
		t.Errorf("refresh: exit %d\n%s%s", code, out, errOut)
	}

	code, out, _ = execute("refresh", "-socket", serveStatusWithRefresh(t, st, renderAll("missing key secretKey")))
	if code != 1 || !strings.Contains(out, "/etc/sigsci/extra.conf\tfailed: missing key secretKey") {
		t.Errorf("refresh with a failing template: exit %d\n%s", code, out)
	}

	code, _, errOut = execute("refresh", "-socket", serveStatusWithRefresh(t, st, func() error { return nil }), "-timeout", "300ms")
	if code != 1 || !strings.Contains(errOut, "not every template rendered") {
		t.Errorf("refresh that renders nothing: exit %d, stderr %q", code, errOut)
	}

	code, _, errOut = execute("refresh", "-socket", filepath.Join(t.TempDir(), "none.sock"))
	if code != 2 || !strings.Contains(errOut, "hostd refresh:") {
		t.Errorf("refresh without hostd: exit %d, stderr %q", code, errOut)
	}
}

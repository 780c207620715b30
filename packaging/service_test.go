package packaging

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/hosttest"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
)

// userManagerDropIn relaxes the settings of hostd.service that a systemd
// *user* manager on this kind of machine cannot set up, and points hostd at
// the test's configuration; PID 1 on a real host applies the packaged unit
// as it is.
const userManagerDropIn = systemdtest.RelaxedSandbox + `ExecStart=
ExecStart=/usr/bin/hostd run -config ` + sandboxConfig + `
`

// sandboxConfig is the installed example configuration with two changes: a
// Vault address where nothing listens, and the status socket in the user
// manager's runtime directory (where RuntimeDirectory=hostd puts it there).
const sandboxConfig = "/etc/hostd/unit-test.hcl"

// checkServiceRunsUnderItsSandbox starts the installed hostd.service in a
// real systemd user manager, as user hostd with the unit's hardening
// (system-call filter, no capabilities, read-only file system, ...), and
// checks that hostd runs there: it reads its configuration and AppRole files,
// reaches for Vault over the network, tells systemd it is ready (Type=notify)
// although Vault does not answer, serves its status socket in its runtime
// directory, and stops cleanly on SIGTERM.
//
// What differs from PID 1, for sd_notify: a user manager's notify socket
// lives in its owner's runtime directory, which is private; PID 1's
// /run/systemd/notify is open to every service. systemdtest.ForServiceUsers
// opens the way to the socket for user hostd, as PID 1 has it, and places the
// manager's directory where hostd's sandbox still sees it: not in /tmp
// (PrivateTmp=), nor in /run, which systemd replaces with a tmpfs for the
// sandbox where /run is no mount point (as in a container). The unit file is
// the packaged one.
func checkServiceRunsUnderItsSandbox(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m := systemdtest.Start(t, systemdtest.ForServiceUsers())

	socket := filepath.Join(m.RuntimeDir(), "hostd", "hostd.sock")
	example := hosttest.ReadFile(t, "/etc/hostd/hostd.hcl")
	config := strings.NewReplacer(
		`"https://vault.example.com:8200"`, `"http://127.0.0.1:1"`,
		`"/run/hostd/hostd.sock"`, `"`+socket+`"`,
	).Replace(example)
	if config == example || strings.Count(config, "127.0.0.1:1\"")+strings.Count(config, socket) != 2 {
		t.Fatalf("the example configuration no longer holds the Vault address and socket path this test replaces:\n%s", example)
	}
	writeOwned(t, sandboxConfig, config, 0o640, "root", "hostd")
	writeOwned(t, "/etc/hostd/role-id", "unit-test-role-id\n", 0o400, "hostd", "hostd")
	writeOwned(t, "/etc/hostd/secret-id", "unit-test-secret-id\n", 0o400, "hostd", "hostd")

	if err := m.InstallDropIn(ctx, "hostd.service", "user-manager.conf", userManagerDropIn); err != nil {
		t.Fatal(err)
	}
	if err := m.InstallUnit(ctx, "hostd.service", hosttest.ReadFile(t, "/usr/lib/systemd/system/hostd.service")); err != nil {
		t.Fatal(err)
	}
	systemctl := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--user"}, args...)...)
		cmd.Env = append(os.Environ(), m.Env()...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("systemctl --user %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	// Type=notify: the start job ends at READY=1, which hostd sends once it
	// runs, Vault or not (TimeoutStartSec bounds the wait).
	starting := time.Now()
	systemctl("start", "hostd.service")
	t.Logf("systemctl start hostd.service returned after %s with Vault unreachable", time.Since(starting).Round(time.Millisecond))

	st := waitForStatus(t, ctx, socket, func(s hostdStatus) bool { return s.Auth.LastError != "" })
	if st.Version != release.version {
		t.Errorf("hostd status reports version %q, want %q", st.Version, release.version)
	}
	if st.Auth.Method != "approle" || !strings.Contains(st.Auth.LastError, "connection refused") {
		t.Errorf("auth %s: %q, want an approle login refused by the unreachable Vault", st.Auth.Method, st.Auth.LastError)
	}

	props := map[string]string{}
	for _, line := range strings.Split(systemctl("show", "hostd.service", "-p", "ActiveState,SubState,MainPID"), "\n") {
		key, value, _ := strings.Cut(line, "=")
		props[key] = value
	}
	if props["ActiveState"] != "active" || props["SubState"] != "running" {
		t.Errorf("hostd.service is %s/%s, want active/running (ready although Vault is unreachable)", props["ActiveState"], props["SubState"])
	}
	if uid := processUID(t, props["MainPID"]); uid != lookupUID(t, "hostd") {
		t.Errorf("hostd runs as uid %s, want user hostd (%s)", uid, lookupUID(t, "hostd"))
	}

	systemctl("stop", "hostd.service")
	if got := systemctl("show", "hostd.service", "-p", "Result", "--value"); got != "success" {
		t.Errorf("after stop, Result=%s, want success (a clean exit on SIGTERM)", got)
	}
}

// hostdStatus is the part of `hostd status --json` this test reads.
type hostdStatus struct {
	Version string `json:"version"`
	Auth    struct {
		Method    string `json:"method"`
		LastError string `json:"last_error"`
	} `json:"auth"`
}

// waitForStatus polls `hostd status --json` until done accepts the answer or
// the deadline passes.
func waitForStatus(t *testing.T, ctx context.Context, socket string, done func(hostdStatus) bool) hostdStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		// The exit code is hostd's health (unhealthy here); the JSON is what counts.
		out, _ := exec.CommandContext(ctx, "/usr/bin/hostd", "status", "--json", "-socket", socket).Output()
		var st hostdStatus
		if err := json.Unmarshal(out, &st); err == nil && done(st) {
			return st
		}
		last = string(out)
		select {
		case <-ctx.Done():
			t.Fatalf("hostd status never showed a login attempt (last answer %q)", last)
		case <-tick.C:
		}
	}
}

// writeOwned writes a file that the test removes again.
func writeOwned(t *testing.T, path, content string, mode os.FileMode, owner, group string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s exists already; the test would overwrite it", path)
	}
	t.Cleanup(func() { os.Remove(path) })
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	runOK(t, "", "chown", owner+":"+group, path)
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func processUID(t *testing.T, pid string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatalf("hostd's main process %s: %v", pid, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == "Uid:" {
			for _, id := range fields[2:] {
				if id != fields[1] {
					t.Errorf("process %s has mixed uids %v", pid, fields[1:])
				}
			}
			return fields[1]
		}
	}
	t.Fatalf("no Uid line for process %s", pid)
	return ""
}

func lookupUID(t *testing.T, name string) string {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return u.Uid
}

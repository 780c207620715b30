package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
)

func TestShellAssignmentsSurviveASourcingShell(t *testing.T) {
	env := []string{"PLAIN=/run/x", "ODD=it's a $HOME `x` \"y\"", "EMPTY="}
	script := shellAssignments(env) + `printf '%s|%s|%s' "$PLAIN" "$ODD" "$EMPTY"`
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	if want := "/run/x|it's a $HOME `x` \"y\"|"; string(out) != want {
		t.Fatalf("sourced values %q, want %q", out, want)
	}
}

// TestRunServesAManagerUntilCancelled starts a real user manager through run,
// reaches it with systemctl --user using only the environment file, and
// checks that cancelling stops it.
func TestRunServesAManagerUntilCancelled(t *testing.T) {
	dir, err := os.MkdirTemp("", "umtest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	envFile := filepath.Join(dir, "env")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, filepath.Join(dir, "sd"), envFile, io.Discard) }()

	deadline := time.NewTimer(startTimeout + 5*time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(envFile); err == nil {
			break
		}
		select {
		case err := <-done:
			if errors.Is(err, systemdtest.ErrUnavailable) && os.Getenv("CI") != "true" {
				t.Skipf("skipping: needs a real systemd user manager: %v", err)
			}
			t.Fatalf("run returned before writing the environment: %v", err)
		case <-deadline.C:
			t.Fatal("no environment file before the start timeout")
		case <-tick.C:
		}
	}

	// The unit linked from outside lands in the manager's own directory.
	unit := filepath.Join(dir, "probe.service")
	if err := os.WriteFile(unit, []byte("[Service]\nExecStart=/bin/sleep infinity\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "set -a; . "+envFile+"; set +a; "+
		"systemctl --user link "+unit+" && systemctl --user start probe.service && "+
		"systemctl --user show -p ActiveState --value probe.service").CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "active") {
		t.Fatalf("systemctl --user through the environment file: %v: %s", err, out)
	}
	if _, err := os.Lstat(filepath.Join(dir, "sd", "config", "systemd", "user", "probe.service")); err != nil {
		t.Fatalf("the linked unit is not in the manager's unit directory: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of cancel")
	}
	if _, err := os.Stat(filepath.Join(dir, "sd", "run", "bus")); err == nil {
		if out, err := exec.Command("sh", "-c", ". "+envFile+"; export DBUS_SESSION_BUS_ADDRESS XDG_RUNTIME_DIR; systemctl --user is-system-running").CombinedOutput(); err == nil {
			t.Fatalf("the manager still answers after run returned: %s", out)
		}
	}
}

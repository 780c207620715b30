package systemdtest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
)

// TestServiceUsersMeetPolkit checks that another user reaches a manager
// started ForServiceUsers, may read from it, and that polkit, not the bus,
// decides what that user may change: with no rule for it, starting a unit
// is refused with polkit's answer.
func TestServiceUsersMeetPolkit(t *testing.T) {
	m, ctx := startWithUnit(t, "probe.service", sleeper, systemdtest.ForServiceUsers())

	asNobody := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "setpriv", append([]string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "busctl", "--user"}, args...)...)
		cmd.Env = append(os.Environ(), m.Env()...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	const dest, path, iface = "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
	if out, err := asNobody("get-property", dest, path, iface, "Version"); err != nil {
		t.Fatalf("user nobody cannot read from the manager's bus: %v: %s", err, out)
	}
	out, err := asNobody("call", dest, path, iface, "StartUnit", "ss", "probe.service", "replace")
	if err == nil {
		t.Fatalf("user nobody started a unit without a polkit rule allowing it: %s", out)
	}
	if !strings.Contains(out, "Interactive authentication required") {
		t.Fatalf("user nobody's StartUnit failed, but not with polkit's refusal: %v: %s", err, out)
	}
	if got := strings.TrimSpace(systemctl(t, m, "show", "-p", "ActiveState", "--value", "probe.service")); got != "inactive" {
		t.Fatalf("probe.service is %s after a refused start", got)
	}
}

// TestSystemCommandReachesTheManager runs a root systemctl without --user,
// as a package's maintainer script does, and checks it acts on this manager.
func TestSystemCommandReachesTheManager(t *testing.T) {
	m, ctx := startWithUnit(t, "probe.service", sleeper, systemdtest.ForServiceUsers())
	if out, err := m.SystemCommand(ctx, "systemctl", "start", "probe.service").CombinedOutput(); err != nil {
		t.Fatalf("systemctl start probe.service in the manager's namespace: %v: %s", err, out)
	}
	if got := strings.TrimSpace(systemctl(t, m, "show", "-p", "ActiveState", "--value", "probe.service")); got != "active" {
		t.Fatalf("probe.service is %s after a systemctl start through SystemCommand, want active", got)
	}
}

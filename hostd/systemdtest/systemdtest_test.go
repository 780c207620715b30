package systemdtest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
)

func TestManagerRunsAnInstalledUnit(t *testing.T) {
	m := systemdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	marker := filepath.Join(m.Dir(), "started")
	unit := "[Service]\nExecStart=/bin/sh -c 'touch " + marker + " && exec sleep infinity'\n"
	if err := m.InstallUnit(ctx, "marker.service", unit); err != nil {
		t.Fatal(err)
	}
	if err := m.StartUnit(ctx, "marker.service"); err != nil {
		t.Fatal(err)
	}

	// The same manager answers a real systemctl through Env().
	out := systemctl(t, m, "show", "-p", "ActiveState", "-p", "SubState", "marker.service")
	if !strings.Contains(out, "ActiveState=active") || !strings.Contains(out, "SubState=running") {
		t.Fatalf("systemctl --user show: %s", out)
	}
	// Active means forked; the shell writes its marker a moment later.
	ticker := time.NewTicker(10 * time.Millisecond)
	defer ticker.Stop()
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			t.Fatalf("unit is active but never left its marker")
		}
	}
}

func TestInstallUnitReloadsTheDefinition(t *testing.T) {
	m, ctx := startWithUnit(t, "desc.service", "[Unit]\nDescription=first\n[Service]\nExecStart=/bin/sleep infinity\n")
	if err := m.InstallUnit(ctx, "desc.service", "[Unit]\nDescription=second\n[Service]\nExecStart=/bin/sleep infinity\n"); err != nil {
		t.Fatal(err)
	}
	if out := systemctl(t, m, "show", "-p", "Description", "desc.service"); strings.TrimSpace(out) != "Description=second" {
		t.Fatalf("after a second InstallUnit the manager reports %q", out)
	}
}

func TestStartUnitReportsAFailedJob(t *testing.T) {
	m, ctx := startWithUnit(t, "broken.service", "[Service]\nExecStartPre=/bin/false\nExecStart=/bin/sleep infinity\n")
	err := m.StartUnit(ctx, "broken.service")
	if err == nil || !strings.Contains(err.Error(), `"failed"`) {
		t.Fatalf("StartUnit of a unit whose ExecStartPre fails: err = %v, want job result failed", err)
	}
}

func TestStopEndsManagerAndItsUnits(t *testing.T) {
	m, ctx := startWithUnit(t, "sleeper.service", sleeper)
	if err := m.StartUnit(ctx, "sleeper.service"); err != nil {
		t.Fatal(err)
	}
	props := systemctl(t, m, "show", "-p", "MainPID", "--value", "sleeper.service")
	unitPID := strings.TrimSpace(props)
	if unitPID == "" || unitPID == "0" {
		t.Fatalf("no main pid for a running unit: %q", props)
	}

	select {
	case <-m.Done():
		t.Fatal("Done is closed while the manager runs")
	default:
	}
	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Done():
	default:
		t.Fatal("Done is still open after Stop returned")
	}
	for _, pid := range []string{unitPID, strconv.Itoa(m.PID())} {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			t.Errorf("process %s still exists after Stop", pid)
		}
	}
	if err := m.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, pattern := range []string{"/sys/fs/cgroup/systemdtest-*-", "/sys/fs/cgroup/*/systemdtest-*-"} {
		if leftover, _ := filepath.Glob(pattern + filepath.Base(m.Dir())); len(leftover) > 0 {
			t.Fatalf("cgroups left after Stop: %v", leftover)
		}
	}
}

func TestTwoManagersDoNotDisturbEachOther(t *testing.T) {
	a, b := systemdtest.Start(t), systemdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The same unit name in both: sharing a cgroup, stopping b's would kill
	// a's process too.
	for _, m := range []*systemdtest.Manager{a, b} {
		if err := m.InstallUnit(ctx, "same.service", sleeper); err != nil {
			t.Fatal(err)
		}
		if err := m.StartUnit(ctx, "same.service"); err != nil {
			t.Fatal(err)
		}
	}
	before := systemctl(t, a, "show", "-p", "MainPID", "-p", "SubState", "same.service")
	if err := b.StopUnit(ctx, "same.service"); err != nil {
		t.Fatal(err)
	}
	if after := systemctl(t, a, "show", "-p", "MainPID", "-p", "SubState", "same.service"); after != before || !strings.Contains(after, "SubState=running") {
		t.Fatalf("stopping a unit in one manager changed the other's: %q → %q", before, after)
	}
}

// sleeper is a unit that runs until it is stopped.
const sleeper = "[Service]\nExecStart=/bin/sleep infinity\n"

// startWithUnit starts a manager with opts and installs the unit name in
// it. The context it returns ends with the test, within 20 s.
func startWithUnit(t *testing.T, name, content string, opts ...systemdtest.Option) (*systemdtest.Manager, context.Context) {
	t.Helper()
	m := systemdtest.Start(t, opts...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if err := m.InstallUnit(ctx, name, content); err != nil {
		t.Fatal(err)
	}
	return m, ctx
}

func systemctl(t *testing.T, m *systemdtest.Manager, args ...string) string {
	t.Helper()
	cmd := exec.Command("systemctl", append([]string{"--user"}, args...)...)
	cmd.Env = append(os.Environ(), m.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemctl --user %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

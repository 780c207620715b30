package restart_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigsci-keys/sigsci-keys/hostd/event"
	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/systemdtest"
)

const (
	testDeadline = 30 * time.Second
	pollEvery    = 20 * time.Millisecond
)

// setup starts a user manager with the given units installed and started,
// and a restart.Conn to it.
func setup(t *testing.T, jobTimeout time.Duration, units map[string]string, start ...string) (*systemdtest.Manager, *restart.Conn, context.Context) {
	t.Helper()
	m := systemdtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	for name, content := range units {
		if err := m.InstallUnit(ctx, name, content); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range start {
		if err := m.StartUnit(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := restart.Dial(ctx, restart.Options{Bus: restart.UserBus, Address: m.BusAddress(), JobTimeout: jobTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return m, conn, ctx
}

const sleeper = "[Service]\nExecStart=/bin/sleep infinity\n"

func TestRestartRunsANewInstanceOfTheUnit(t *testing.T) {
	_, conn, ctx := setup(t, 10*time.Second, map[string]string{"agent.service": sleeper}, "agent.service")

	before, err := conn.UnitState(ctx, "agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if !before.Active() || before.SubState != "running" || before.MainPID == 0 || before.InvocationID == "" {
		t.Fatalf("state before restart: %+v", before)
	}

	res, err := conn.Restart(ctx, "agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if res.Job != event.ResultDone || res.Unit != "agent.service" || res.Duration <= 0 {
		t.Fatalf("result: %+v", res)
	}
	t.Logf("restart of a running Type=simple unit took %s", res.Duration)

	after, err := conn.UnitState(ctx, "agent.service")
	if err != nil {
		t.Fatal(err)
	}
	if !after.Active() || after.SubState != "running" {
		t.Fatalf("state after restart: %+v", after)
	}
	if after.InvocationID == before.InvocationID || after.MainPID == before.MainPID {
		t.Fatalf("restart did not start a new instance: before %+v after %+v", before, after)
	}
	if after.NRestarts != 0 {
		t.Fatalf("a requested restart is not an automatic one, NRestarts = %d", after.NRestarts)
	}
}

func TestUnitStateCountsAutomaticRestarts(t *testing.T) {
	// First run fails; systemd restarts it (Restart=on-failure) and the
	// second run stays up: NRestarts must read 1.
	unit := `[Service]
ExecStart=/bin/sh -c 'if [ -e "$RUNTIME_DIRECTORY/ran" ]; then exec sleep infinity; fi; touch "$RUNTIME_DIRECTORY/ran"; exit 1'
RuntimeDirectory=flaky
RuntimeDirectoryPreserve=yes
Restart=on-failure
RestartSec=50ms
`
	_, conn, ctx := setup(t, 10*time.Second, map[string]string{"flaky.service": unit}, "flaky.service")

	st := waitState(ctx, t, conn, "flaky.service", func(s restart.State) bool {
		return s.Active() && s.SubState == "running" && s.NRestarts == 1
	})
	t.Logf("after one automatic restart: %+v", st)
}

// TryRestart is hostd's restart after a change: it must not start a unit an
// operator stopped, nor one that failed (systemd makes the job a no-op).
func TestTryRestartRestartsOnlyARunningUnit(t *testing.T) {
	units := map[string]string{
		"running.service": sleeper,
		"stopped.service": sleeper,
		"failed.service":  "[Service]\nExecStart=/bin/sh -c 'exit 3'\n",
	}
	m, conn, ctx := setup(t, 10*time.Second, units, "running.service", "stopped.service", "failed.service")
	if err := m.StopUnit(ctx, "stopped.service"); err != nil {
		t.Fatal(err)
	}
	failed := waitState(ctx, t, conn, "failed.service", func(s restart.State) bool { return s.ActiveState == "failed" })
	if failed.Result != "exit-code" {
		t.Errorf("result of a unit that exited 3: %q, want exit-code", failed.Result)
	}
	running, err := conn.UnitState(ctx, "running.service")
	if err != nil {
		t.Fatal(err)
	}

	for _, unit := range []string{"running.service", "stopped.service", "failed.service"} {
		if res, err := conn.TryRestart(ctx, unit); err != nil || res.Job != event.ResultDone {
			t.Fatalf("try-restart %s: %+v, %v; want done", unit, res, err)
		}
	}
	if st, _ := conn.UnitState(ctx, "running.service"); !st.Active() || st.InvocationID == running.InvocationID {
		t.Errorf("running unit was not restarted: before %+v, after %+v", running, st)
	}
	if st, _ := conn.UnitState(ctx, "stopped.service"); st.ActiveState != "inactive" || st.MainPID != 0 || st.Result != "success" {
		t.Errorf("a stopped unit was started by try-restart: %+v", st)
	}
	if st, _ := conn.UnitState(ctx, "failed.service"); st.ActiveState != "failed" || st.InvocationID != failed.InvocationID {
		t.Errorf("a failed unit was started by try-restart: before %+v, after %+v", failed, st)
	}
}

func TestJobTimeoutFollowsTheUnit(t *testing.T) {
	units := map[string]string{
		"timed.service":    "[Service]\nTimeoutStartSec=7s\nTimeoutStopSec=11s\nExecStart=/bin/sleep infinity\n",
		"defaults.service": sleeper,
		"endless.service":  "[Service]\nTimeoutStartSec=infinity\nExecStart=/bin/sleep infinity\n",
	}
	m, conn, ctx := setup(t, 0, units)
	for unit, want := range map[string]time.Duration{
		"timed.service":    18*time.Second + 30*time.Second,
		"defaults.service": 90*time.Second + 90*time.Second + 30*time.Second, // systemd's defaults
		"endless.service":  restart.DefaultJobTimeout,
		"default.target":   restart.DefaultJobTimeout, // not a service
	} {
		if got := conn.JobTimeout(ctx, unit); got != want {
			t.Errorf("job timeout of %s = %s, want %s", unit, got, want)
		}
	}
	set, err := restart.Dial(ctx, restart.Options{Bus: restart.UserBus, Address: m.BusAddress(), JobTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if got := set.JobTimeout(ctx, "timed.service"); got != time.Minute {
		t.Errorf("configured job timeout: %s, want 1m", got)
	}
}

func TestRestartReportsAFailedJob(t *testing.T) {
	units := map[string]string{"broken.service": "[Service]\nExecStartPre=/bin/sh -c 'exit 3'\nExecStart=/bin/sleep infinity\n"}
	_, conn, ctx := setup(t, 10*time.Second, units)

	res, err := conn.Restart(ctx, "broken.service")
	if !errors.Is(err, restart.ErrJobFailed) {
		t.Fatalf("err = %v, want ErrJobFailed", err)
	}
	if res.Job != event.ResultFailed {
		t.Fatalf("job result %q, want failed", res.Job)
	}
	st, err := conn.UnitState(ctx, "broken.service")
	if err != nil {
		t.Fatal(err)
	}
	if st.ActiveState != "failed" {
		t.Fatalf("state after a failed start: %+v", st)
	}
}

func TestRestartStopsWaitingAfterTheJobTimeout(t *testing.T) {
	// slow.service's start waits for the test, so its job outlasts any
	// job timeout; the timeout itself leaves quick.service's restart time
	// to end on a loaded machine.
	const jobTimeout = 2 * time.Second
	gate := filepath.Join(t.TempDir(), "gate")
	units := map[string]string{
		"slow.service":  "[Service]\nExecStartPre=/bin/sh -c 'while [ ! -e " + gate + " ]; do sleep 0.02; done'\nExecStart=/bin/sleep infinity\n",
		"quick.service": sleeper,
	}
	_, conn, ctx := setup(t, jobTimeout, units, "quick.service")

	res, err := conn.Restart(ctx, "slow.service")
	if !errors.Is(err, restart.ErrJobTimeout) {
		t.Fatalf("err = %v, want ErrJobTimeout", err)
	}
	if res.Job != event.ResultJobTimeout || res.Duration < jobTimeout {
		t.Fatalf("result %+v, want job_timeout after %s", res, jobTimeout)
	}

	// The late result of the abandoned job must not jam the connection:
	// once slow.service is up, another restart still gets its own result.
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	waitState(ctx, t, conn, "slow.service", func(s restart.State) bool { return s.Active() })
	res, err = conn.Restart(ctx, "quick.service")
	if err != nil || res.Job != event.ResultDone {
		t.Fatalf("restart after an abandoned job: %+v, %v", res, err)
	}
}

func TestUnknownUnitIsAnError(t *testing.T) {
	_, conn, ctx := setup(t, 10*time.Second, nil)

	if _, err := conn.Restart(ctx, "nope.service"); !errors.Is(err, restart.ErrNoSuchUnit) {
		t.Fatalf("Restart: err = %v, want ErrNoSuchUnit", err)
	}
	if _, err := conn.UnitState(ctx, "nope.service"); !errors.Is(err, restart.ErrNoSuchUnit) {
		t.Fatalf("UnitState: err = %v, want ErrNoSuchUnit", err)
	}
}

func TestDialUserBusFromEnvironment(t *testing.T) {
	m, _, ctx := setup(t, 10*time.Second, map[string]string{"agent.service": sleeper}, "agent.service")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	t.Setenv("XDG_RUNTIME_DIR", m.RuntimeDir())

	conn, err := restart.Dial(ctx, restart.Options{Bus: restart.UserBus})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if want := "unix:path=" + filepath.Join(m.RuntimeDir(), "bus"); conn.Address() != want {
		t.Fatalf("address %q, want %q", conn.Address(), want)
	}
	if st, err := conn.UnitState(ctx, "agent.service"); err != nil || !st.Active() {
		t.Fatalf("state over the user bus: %+v, %v", st, err)
	}
}

func TestRedialsAfterTheConnectionIsClosed(t *testing.T) {
	_, conn, ctx := setup(t, 10*time.Second, map[string]string{"agent.service": sleeper}, "agent.service")
	conn.Close()
	if res, err := conn.Restart(ctx, "agent.service"); err != nil || res.Job != event.ResultDone {
		t.Fatalf("restart after Close: %+v, %v", res, err)
	}
}

// A host may boot with hostd before the bus: the lazy connection fails
// while there is none, connects once it is there, and refuses after Close.
func TestLazyConnDialsOnceTheBusIsThereAndNotAfterClose(t *testing.T) {
	m, _, ctx := setup(t, 10*time.Second, map[string]string{"agent.service": sleeper}, "agent.service")
	bus := filepath.Join(t.TempDir(), "bus")
	lazy := restart.NewLazyConn(restart.Options{Bus: restart.UserBus, Address: "unix:path=" + bus})
	t.Cleanup(lazy.Close)

	if _, err := lazy.UnitState(ctx, "agent.service"); err == nil || !strings.Contains(err.Error(), bus) {
		t.Fatalf("before the bus is there: err = %v, want one naming %s", err, bus)
	}
	if err := os.Symlink(filepath.Join(m.RuntimeDir(), "bus"), bus); err != nil {
		t.Fatal(err)
	}
	if st, err := lazy.UnitState(ctx, "agent.service"); err != nil || !st.Active() {
		t.Fatalf("once the bus is there: %+v, %v", st, err)
	}
	if p, err := lazy.MainProcess(ctx, "agent.service"); err != nil || !p.Running() {
		t.Fatalf("main process: %+v, %v", p, err)
	}

	lazy.Close()
	res, err := lazy.Restart(ctx, "agent.service")
	if !errors.Is(err, restart.ErrClosed) || res.Unit != "agent.service" || res.Job != "" {
		t.Fatalf("restart after Close: %+v, %v; want nothing queued and ErrClosed", res, err)
	}
	if _, err := lazy.TryRestart(ctx, "agent.service"); !errors.Is(err, restart.ErrClosed) {
		t.Fatalf("try-restart after Close: %v, want ErrClosed", err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	if _, err := restart.Dial(ctx, restart.Options{Bus: "session"}); err == nil || !strings.Contains(err.Error(), `"session"`) {
		t.Fatalf("unknown bus: err = %v", err)
	}
	missing := "unix:path=" + filepath.Join(t.TempDir(), "no-bus")
	_, err := restart.Dial(ctx, restart.Options{Bus: restart.UserBus, Address: missing})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing socket: err = %v, want one naming %s", err, missing)
	}
}

// waitState polls the unit's state until ok, failing the test at ctx's
// deadline.
func waitState(ctx context.Context, t *testing.T, conn *restart.Conn, unit string, ok func(restart.State) bool) restart.State {
	t.Helper()
	ticker := time.NewTicker(pollEvery)
	defer ticker.Stop()
	var last restart.State
	for {
		st, err := conn.UnitState(ctx, unit)
		if err == nil && ok(st) {
			return st
		}
		last = st
		select {
		case <-ctx.Done():
			t.Fatalf("%s never reached the wanted state; last %+v (err %v)", unit, last, err)
		case <-ticker.C:
		}
	}
}

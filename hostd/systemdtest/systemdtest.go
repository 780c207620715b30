// Package systemdtest starts a real systemd user manager for tests and demos.
//
// The manager runs in a private mount namespace (unshare -m) with a tmpfs on
// /run/systemd, so it believes it may run although PID 1 is not systemd, and
// with XDG_RUNTIME_DIR and XDG_CONFIG_HOME inside a directory of the caller's
// choosing, so its units and sockets stay out of the host's. It needs root.
// Started ForServiceUsers, it also serves system units that run as other
// users the way PID 1 does: its bus admits them, polkit decides what they
// may do, and they reach its notify socket.
//
// The package owns that manager process, the unit files it installs or links
// (LinkUnit links a unit file that stays where the caller keeps it), its
// directory (under /var/lib when started ForServiceUsers) and one cgroup per
// manager (cgroup.go); it must not touch the host's systemd, the caller's
// environment, or any other unit.
package systemdtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/sigsci-keys/sigsci-keys/internal/logbuf"
)

// SystemdBinary is the systemd executable started with --user.
const SystemdBinary = "/lib/systemd/systemd"

// ErrUnavailable reports that this machine cannot run a private user manager
// (not root, no unshare, no systemd). Any other start error is a real failure.
var ErrUnavailable = errors.New("systemd user manager unavailable")

const (
	pollInterval = 20 * time.Millisecond
	stopTimeout  = 15 * time.Second
)

// Manager is a running systemd user manager.
type Manager struct {
	dir  string
	cmd  *exec.Cmd
	conn *sddbus.Conn
	log  *logbuf.Buffer
	// cgroups are the manager's own cgroup directories, removed by Stop.
	cgroups []string

	exited  chan struct{} // closed when the process has been reaped
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// StartUserManager starts a user manager whose runtime and configuration
// directories live under dir (which must exist and should have a short path:
// unix socket paths are limited to 108 bytes). It returns once
// org.freedesktop.systemd1 answers on the manager's bus (and, with
// ForServiceUsers, polkit too), or an error when ctx ends first. The manager
// runs until Stop.
func StartUserManager(ctx context.Context, dir string, opts ...Option) (*Manager, error) {
	s := settingsOf(opts)
	if err := checkAvailable(); err != nil {
		return nil, err
	}
	if s.serviceUsers {
		if err := checkServiceUsersAvailable(); err != nil {
			return nil, err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("systemdtest: %w", err)
	}
	m := &Manager{dir: dir, log: &logbuf.Buffer{}, exited: make(chan struct{})}
	if err := m.makeDirs(); err != nil {
		return nil, err
	}
	if s.serviceUsers {
		if err := m.admitEveryUser(); err != nil {
			return nil, err
		}
	}
	if err := m.spawn(); err != nil {
		return nil, err
	}
	if err := m.waitReady(ctx); err != nil {
		_ = m.Stop()
		return nil, fmt.Errorf("systemdtest: user manager did not come up: %w\nmanager output:\n%s", err, m.Output())
	}
	if s.serviceUsers {
		if err := m.serveOtherUsers(ctx); err != nil {
			_ = m.Stop()
			return nil, fmt.Errorf("%w\nmanager output:\n%s", err, m.Output())
		}
	}
	return m, nil
}

// checkAvailable reports ErrUnavailable when a prerequisite is missing.
func checkAvailable() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root for a private mount namespace (unshare -m)", ErrUnavailable)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		return fmt.Errorf("%w: unshare not found: %v", ErrUnavailable, err)
	}
	if _, err := os.Stat(SystemdBinary); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		return fmt.Errorf("%w: unshare -m does not work here: %v: %s", ErrUnavailable, err, bytes.TrimSpace(out))
	}
	return nil
}

func (m *Manager) makeDirs() error {
	if err := os.MkdirAll(m.UnitDir(), 0o755); err != nil {
		return fmt.Errorf("systemdtest: %w", err)
	}
	if err := os.MkdirAll(m.RuntimeDir(), 0o700); err != nil {
		return fmt.Errorf("systemdtest: %w", err)
	}
	// MkdirAll keeps the mode of an existing directory; the manager insists on 0700.
	if err := os.Chmod(m.RuntimeDir(), 0o700); err != nil {
		return fmt.Errorf("systemdtest: %w", err)
	}
	if len(m.BusAddress()) > 100 {
		return fmt.Errorf("systemdtest: directory %q is too long for a unix socket path", m.dir)
	}
	return nil
}

// spawnScript runs inside the new mount namespace: it moves itself into the
// manager's own cgroups (its arguments), puts a tmpfs on /run/systemd to hide
// the host's, creates /run/systemd/system to tell systemd it may run, and
// becomes the manager.
const spawnScript = `for cg in "$@"; do echo $$ > "$cg/cgroup.procs" || exit 1; done
mount -t tmpfs tmpfs /run/systemd && mkdir -p /run/systemd/system && exec "$0" --user`

func (m *Manager) spawn() error {
	if err := os.MkdirAll("/run/systemd", 0o755); err != nil {
		return fmt.Errorf("systemdtest: %w", err)
	}
	cgroups, err := makeCgroups(fmt.Sprintf("systemdtest-%d-%s", os.Getpid(), filepath.Base(m.dir)))
	if err != nil {
		// Still usable alone; two such managers at once may kill each
		// other's units.
		fmt.Fprintf(m.log, "systemdtest: no cgroup of its own, the manager shares its parent's: %v\n", err)
	}
	m.cgroups = cgroups
	args := append([]string{"-m", "sh", "-c", spawnScript, SystemdBinary}, cgroups...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + m.dir,
		"XDG_RUNTIME_DIR=" + m.RuntimeDir(),
		"XDG_CONFIG_HOME=" + m.ConfigDir(),
		"XDG_DATA_HOME=" + filepath.Join(m.dir, "data"),
		"XDG_STATE_HOME=" + filepath.Join(m.dir, "state"),
		"XDG_CACHE_HOME=" + filepath.Join(m.dir, "cache"),
		"SYSTEMD_LOG_TARGET=console",
	}
	cmd.Stdout = m.log
	cmd.Stderr = m.log
	// If the process that started the manager dies without Stop, the
	// manager shuts down (and stops its units) instead of lingering.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		removeCgroups(m.cgroups)
		return fmt.Errorf("systemdtest: start user manager: %w", err)
	}
	m.cmd = cmd
	go func() {
		m.waitErr = cmd.Wait()
		close(m.exited)
	}()
	return nil
}

// waitReady polls until the bus socket exists and systemd answers a method
// call on it; each failed attempt is retried until ctx ends.
func (m *Manager) waitReady(ctx context.Context) error {
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	var last error
	for {
		conn, err := m.tryConnect(ctx)
		if err == nil {
			m.conn = conn
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), last)
		case <-m.exited:
			return fmt.Errorf("manager exited: %v", m.waitErr)
		case <-ticker.C:
		}
	}
}

func (m *Manager) tryConnect(ctx context.Context) (*sddbus.Conn, error) {
	if _, err := os.Stat(m.busPath()); err != nil {
		return nil, err
	}
	conn, err := m.Dial()
	if err != nil {
		return nil, err
	}
	if _, err := conn.SystemStateContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Dir is the directory the manager keeps its runtime and configuration in.
func (m *Manager) Dir() string { return m.dir }

// RuntimeDir is the manager's XDG_RUNTIME_DIR.
func (m *Manager) RuntimeDir() string { return filepath.Join(m.dir, "run") }

// ConfigDir is the manager's XDG_CONFIG_HOME. A systemctl --user that has
// it in its environment links and enables units in the manager's UnitDir
// rather than in the caller's home.
func (m *Manager) ConfigDir() string { return filepath.Join(m.dir, "config") }

// UnitDir is where InstallUnit writes unit files.
func (m *Manager) UnitDir() string { return filepath.Join(m.ConfigDir(), "systemd", "user") }

func (m *Manager) busPath() string { return filepath.Join(m.RuntimeDir(), "bus") }

// BusAddress is the D-Bus address of the manager's user bus.
func (m *Manager) BusAddress() string { return "unix:path=" + m.busPath() }

// Env is the environment a child process (systemctl --user, busctl --user,
// hostd with bus = "user") needs to reach this manager.
func (m *Manager) Env() []string {
	return []string{
		"XDG_RUNTIME_DIR=" + m.RuntimeDir(),
		"DBUS_SESSION_BUS_ADDRESS=" + m.BusAddress(),
	}
}

// Dial opens a new go-systemd connection to this manager's bus. The caller
// closes it.
func (m *Manager) Dial() (*sddbus.Conn, error) {
	return sddbus.NewConnection(func() (*dbus.Conn, error) {
		return dialAuthHello(m.BusAddress())
	})
}

func dialAuthHello(address string) (*dbus.Conn, error) {
	conn, err := dbus.Dial(address)
	if err != nil {
		return nil, err
	}
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		conn.Close()
		return nil, err
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// Reload is systemctl --user daemon-reload; systemd answers once the reload
// is complete.
func (m *Manager) Reload(ctx context.Context) error {
	if err := m.conn.ReloadContext(ctx); err != nil {
		return fmt.Errorf("systemdtest: daemon-reload: %w", err)
	}
	return nil
}

// StartUnit starts name and waits for the job's result, which must be "done".
func (m *Manager) StartUnit(ctx context.Context, name string) error {
	return m.job(ctx, "start", name, m.conn.StartUnitContext)
}

// StopUnit stops name and waits for the job's result, which must be "done".
func (m *Manager) StopUnit(ctx context.Context, name string) error {
	return m.job(ctx, "stop", name, m.conn.StopUnitContext)
}

type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

func (m *Manager) job(ctx context.Context, verb, name string, call jobFunc) error {
	result := make(chan string, 1)
	if _, err := call(ctx, name, "replace", result); err != nil {
		return fmt.Errorf("systemdtest: %s %s: %w", verb, name, err)
	}
	select {
	case r := <-result:
		if r != "done" {
			return fmt.Errorf("systemdtest: %s %s: job result %q", verb, name, r)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("systemdtest: %s %s: %w", verb, name, ctx.Err())
	}
}

// Done is closed once the manager process has exited, whether through Stop
// or on its own.
func (m *Manager) Done() <-chan struct{} { return m.exited }

// PID is the manager's process id.
func (m *Manager) PID() int { return m.cmd.Process.Pid }

// Output is what the manager printed so far.
func (m *Manager) Output() string { return m.log.String() }

// Stop asks the manager to exit (SIGTERM: it stops its units first) and waits
// for it; after stopTimeout it is killed. Calling Stop again returns the first
// result.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() { m.stopErr = m.stop() })
	return m.stopErr
}

func (m *Manager) stop() error {
	if m.conn != nil {
		m.conn.Close()
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-m.exited:
	case <-timer.C:
		_ = m.cmd.Process.Kill()
		<-m.exited
		removeCgroups(m.cgroups)
		return fmt.Errorf("systemdtest: user manager ignored SIGTERM for %s and was killed", stopTimeout)
	}
	removeCgroups(m.cgroups)
	var exit *exec.ExitError
	if m.waitErr != nil && !errors.As(m.waitErr, &exit) {
		return fmt.Errorf("systemdtest: wait for user manager: %w", m.waitErr)
	}
	return nil
}

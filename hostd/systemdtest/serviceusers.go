package systemdtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
)

// A system unit runs as its own user (User=) and talks to PID 1: it sends
// sd_notify to /run/systemd/notify, open to every service, and calls
// systemd over the system bus, which admits every user and leaves the
// decision to polkit. A user manager's notify socket and bus are its owner's
// alone. ForServiceUsers gives this manager what PID 1 has, so a system
// unit file runs here as it would on a host.

// Option changes how StartUserManager and Start set up the manager.
type Option func(*settings)

type settings struct {
	serviceUsers bool
}

func settingsOf(opts []Option) settings {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	return s
}

// ForServiceUsers makes the manager serve units that run as other users the
// way PID 1 does:
//
//   - its bus admits every user, as the system bus does (dbus.service runs
//     the session bus with one more policy: <allow user="*"/>);
//   - polkitd answers authorization checks on that bus (polkit.service),
//     with the machine's rules (/etc/polkit-1/rules.d,
//     /usr/share/polkit-1/rules.d): a call from another user to start,
//     stop or restart a unit is allowed only where a rule says so, as on a
//     host;
//   - its notify socket, and the directories down to it, are open to every
//     user (Type=notify, WatchdogSec=).
//
// The manager's directory must then lie where a sandboxed unit still sees
// it: not in /tmp (PrivateTmp=), nor in /run, which systemd replaces for
// the sandbox where /run is no mount point. Start puts it in /var/lib.
func ForServiceUsers() Option { return func(s *settings) { s.serviceUsers = true } }

// The programs ForServiceUsers runs, and the bus configuration it extends.
const (
	dbusDaemon    = "/usr/bin/dbus-daemon"
	polkitDaemon  = "/usr/lib/polkit-1/polkitd"
	sessionConfig = "/usr/share/dbus-1/session.conf"
)

// polkitUnit is the unit that runs polkitd on the manager's bus, which it
// takes for the system bus.
const polkitUnit = "polkit.service"

// RelaxedSandbox is a drop-in for a hardened system unit run by this
// manager: the [Service] settings that a user manager on a machine whose
// PID 1 is not systemd cannot set up (the unit fails with 226/NAMESPACE
// before it runs), each relaxed as little as that allows. The rest of the
// unit's hardening applies as under PID 1. Append further [Service] lines
// to it as needed.
const RelaxedSandbox = `[Service]
ProtectHome=read-only
ProtectKernelTunables=no
ProtectKernelLogs=no
`

func checkServiceUsersAvailable() error {
	for _, path := range []string{dbusDaemon, sessionConfig, polkitDaemon} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%w: serving other users needs %s: %v", ErrUnavailable, path, err)
		}
	}
	return nil
}

// busConfig is the session bus's configuration plus the system bus's
// admission of every user.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>` + sessionConfig + `</include>
  <policy context="default">
    <allow user="*"/>
  </policy>
</busconfig>
`

// admitEveryUser configures the manager's bus, before the manager starts
// it, to admit every user.
func (m *Manager) admitEveryUser() error {
	config := filepath.Join(m.dir, "bus.conf")
	if err := os.WriteFile(config, []byte(busConfig), 0o644); err != nil {
		return fmt.Errorf("systemdtest: bus configuration: %w", err)
	}
	dropIn := "[Service]\nExecStart=\nExecStart=" + dbusDaemon + " --config-file=" + config +
		" --address=systemd: --nofork --nopidfile --systemd-activation --syslog-only\n"
	return m.writeDropIn("dbus.service", "every-user.conf", dropIn)
}

// serveOtherUsers opens the way to the bus and the notify socket to every
// user, then starts polkitd (which runs as its own user) on the bus.
func (m *Manager) serveOtherUsers(ctx context.Context) error {
	for path, mode := range map[string]os.FileMode{
		m.dir:          0o711,
		m.RuntimeDir(): 0o711,
		filepath.Join(m.RuntimeDir(), "systemd", "notify"): 0o777,
	} {
		if err := os.Chmod(path, mode); err != nil {
			return fmt.Errorf("systemdtest: opening the manager to other users: %w", err)
		}
	}
	unit := "[Unit]\nDescription=polkit on this manager's bus\n\n[Service]\nType=dbus\nBusName=org.freedesktop.PolicyKit1\n" +
		"Environment=DBUS_SYSTEM_BUS_ADDRESS=" + m.BusAddress() + "\nExecStart=" + polkitDaemon + " --no-debug\n"
	if err := m.InstallUnit(ctx, polkitUnit, unit); err != nil {
		return err
	}
	return m.StartUnit(ctx, polkitUnit)
}

// SystemCommand is name run as a package's maintainer scripts run on a host
// whose PID 1 is this manager: in the manager's mount namespace, where
// /run/systemd/system exists, and with the system bus at the manager's bus.
// A root `systemctl daemon-reload` or `systemctl try-restart UNIT` (no
// --user) there reaches this manager: systemctl finds no
// /run/systemd/private and falls back to the system bus.
func (m *Manager) SystemCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--mount", "--target", strconv.Itoa(m.PID()), "--", name}, args...)...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+m.BusAddress())
	return cmd
}

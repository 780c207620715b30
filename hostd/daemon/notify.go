package daemon

import (
	"fmt"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"
)

// Notifier tells the service manager about hostd's state (sd_notify).
type Notifier interface {
	Notify(state string) error
	// WatchdogInterval is how often the manager expects WATCHDOG=1; zero
	// when the watchdog is off.
	WatchdogInterval() time.Duration
}

// Service manager states hostd sends.
const (
	notifyReady     = sddaemon.SdNotifyReady
	notifyStopping  = sddaemon.SdNotifyStopping
	notifyWatchdog  = sddaemon.SdNotifyWatchdog
	notifyReloading = sddaemon.SdNotifyReloading
)

// reloading is RELOADING=1 with the MONOTONIC_USEC that Type=notify-reload
// requires.
func reloading() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return notifyReloading
	}
	return fmt.Sprintf("%s\nMONOTONIC_USEC=%d", notifyReloading, ts.Nano()/1000)
}

func statusLine(text string) string { return "STATUS=" + text }

// systemdNotifier talks to systemd through $NOTIFY_SOCKET; without it (not
// started by systemd) every call does nothing.
type systemdNotifier struct{}

func (systemdNotifier) Notify(state string) error {
	_, err := sddaemon.SdNotify(false, state)
	return err
}

func (systemdNotifier) WatchdogInterval() time.Duration {
	d, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0
	}
	return d
}

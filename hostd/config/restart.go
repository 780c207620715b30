package config

import (
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sigsci-keys/sigsci-keys/hostd/restart"
	"github.com/sigsci-keys/sigsci-keys/hostd/rollout"
)

// This file converts the restart block: the policy for restarting units,
// its maintenance window and its health check command.

func (c *converter) restart(r *rawRestart) Restart {
	if r == nil {
		r = &rawRestart{}
	}
	return Restart{
		Bus:                c.oneOf(r.Bus, restart.SystemBus, restart.SystemBus, restart.UserBus),
		Debounce:           c.duration(r.Debounce, DefaultDebounce, 0, time.Hour),
		Splay:              c.duration(r.Splay, DefaultSplay, 0, 24*time.Hour),
		JobTimeout:         c.duration(r.JobTimeout, 0, time.Second, time.Hour),
		ActiveTimeout:      c.duration(r.ActiveTimeout, rollout.DefaultActiveTimeout, time.Second, time.Hour),
		StableFor:          c.duration(r.StableFor, rollout.DefaultStableFor, time.Second, 10*time.Minute),
		RetryRejectedAfter: c.duration(r.RetryRejectedAfter, rollout.DefaultRetryRejectedAfter, time.Minute, 7*24*time.Hour),
		Check:              c.check(r.Check),
		Window:             c.window(r.Window),
	}
}

func (c *converter) check(r *rawCheck) *Check {
	if r == nil {
		return nil
	}
	ch := &Check{Timeout: c.duration(r.Timeout, rollout.DefaultCheckTimeout, time.Second, 10*time.Minute)}
	var command []string
	if !c.required(r.Command, &command, r.DefRange, "check", "command") {
		return ch
	}
	if len(command) == 0 || command[0] == "" {
		c.errorf(r.Command.Range, "Empty check command", `command is the program and its arguments, run without a shell, such as ["/usr/local/bin/check-agent", "--quick"]`)
		return ch
	}
	if c.absPath(command[0], r.Command.Range, "the check command's program") {
		if err := checkExecutable(command[0]); err != nil {
			c.errorf(r.Command.Range, "Unusable check command", "%v", err)
		}
	}
	ch.Command = command
	return ch
}

// checkExecutable makes sure path is a regular file someone may execute.
func checkExecutable(path string) error {
	info, err := os.Stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("cannot run the check command: %w", err)
	case !info.Mode().IsRegular():
		return fmt.Errorf("check command %s is not a regular file", path)
	case info.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("check command %s is not executable (mode %#o)", path, info.Mode().Perm())
	}
	return nil
}

func (c *converter) window(r *rawWindow) *Window {
	if r == nil {
		return nil
	}
	var w Window
	var start, end string
	okStart, okEnd := false, false
	if c.required(r.Start, &start, r.DefRange, "maintenance_window", "start") {
		w.Start, okStart = c.clock(start, r.Start)
	}
	if c.required(r.End, &end, r.DefRange, "maintenance_window", "end") {
		w.End, okEnd = c.clock(end, r.End)
	}
	if okStart && okEnd && w.Start == w.End {
		c.errorf(r.End.Range, "Empty maintenance window", "start and end are both %s; give a window such as start = \"02:00\", end = \"04:00\"", start)
	}
	w.Location = time.Local
	if timezone, ok := c.text(r.Timezone); ok {
		loc, err := loadLocation(timezone)
		if err != nil {
			c.errorf(r.Timezone.Range, "Unknown timezone", `timezone must be an IANA name such as "UTC" or "Europe/Berlin", or "Local", got %q: %v`, timezone, err)
		} else {
			w.Location = loc
		}
	}
	return &w
}

// clock parses the value of a, a time-of-day attribute.
func (c *converter) clock(value string, a *hcl.Attribute) (time.Duration, bool) {
	d, err := parseClock(value)
	if err != nil {
		c.errorf(a.Range, "Invalid time of day", `%s must be a 24-hour time HH:MM such as "02:00", got %q`, a.Name, value)
		return 0, false
	}
	return d, true
}

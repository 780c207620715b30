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
		Bus:                c.oneOf(r.Bus, r.BusRange, "bus", restart.SystemBus, restart.SystemBus, restart.UserBus),
		Debounce:           c.duration(r.Debounce, r.DebounceRange, "debounce", DefaultDebounce, 0, time.Hour),
		Splay:              c.duration(r.Splay, r.SplayRange, "splay", DefaultSplay, 0, 24*time.Hour),
		JobTimeout:         c.duration(r.JobTimeout, r.JobTimeoutRange, "job_timeout", 0, time.Second, time.Hour),
		ActiveTimeout:      c.duration(r.ActiveTimeout, r.ActiveTimeoutRange, "active_timeout", rollout.DefaultActiveTimeout, time.Second, time.Hour),
		StableFor:          c.duration(r.StableFor, r.StableForRange, "stable_for", rollout.DefaultStableFor, time.Second, 10*time.Minute),
		RetryRejectedAfter: c.duration(r.RetryRejectedAfter, r.RetryRejectedAfterRange, "retry_rejected_after", rollout.DefaultRetryRejectedAfter, time.Minute, 7*24*time.Hour),
		Check:              c.check(r.Check),
		Window:             c.window(r.Window),
	}
}

func (c *converter) check(r *rawCheck) *Check {
	if r == nil {
		return nil
	}
	ch := &Check{Timeout: c.duration(r.Timeout, r.TimeoutRange, "timeout", rollout.DefaultCheckTimeout, time.Second, 10*time.Minute)}
	if !c.required(r.CommandRange, r.DefRange, "check", "command") {
		return ch
	}
	if len(r.Command) == 0 || r.Command[0] == "" {
		c.errorf(r.CommandRange, "Empty check command", `command is the program and its arguments, run without a shell, such as ["/usr/local/bin/check-agent", "--quick"]`)
		return ch
	}
	if c.absPath(r.Command[0], r.CommandRange, "the check command's program") {
		if err := checkExecutable(r.Command[0]); err != nil {
			c.errorf(r.CommandRange, "Unusable check command", "%v", err)
		}
	}
	ch.Command = r.Command
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
	okStart, okEnd := false, false
	if c.required(r.StartRange, r.DefRange, "maintenance_window", "start") {
		w.Start, okStart = c.clock(r.Start, r.StartRange, "start")
	}
	if c.required(r.EndRange, r.DefRange, "maintenance_window", "end") {
		w.End, okEnd = c.clock(r.End, r.EndRange, "end")
	}
	if okStart && okEnd && w.Start == w.End {
		c.errorf(r.EndRange, "Empty maintenance window", "start and end are both %s; give a window such as start = \"02:00\", end = \"04:00\"", r.Start)
	}
	w.Location = time.Local
	if c.usable(r.TimezoneRange) {
		loc, err := loadLocation(r.Timezone)
		if err != nil {
			c.errorf(r.TimezoneRange, "Unknown timezone", `timezone must be an IANA name such as "UTC" or "Europe/Berlin", or "Local", got %q: %v`, r.Timezone, err)
		} else {
			w.Location = loc
		}
	}
	return &w
}

func (c *converter) clock(value string, rng hcl.Range, name string) (time.Duration, bool) {
	d, err := parseClock(value)
	if err != nil {
		c.errorf(rng, "Invalid time of day", `%s must be a 24-hour time HH:MM such as "02:00", got %q`, name, value)
		return 0, false
	}
	return d, true
}

package config

import (
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/sigsci-keys/sigsci-keys/hostd/report"
)

// This file converts the report block: whether and as which host hostd
// tells Vault which access key each agent runs, and how often.

type rawReport struct {
	DefRange hcl.Range `hcl:",def_range"`

	Enabled  *hcl.Attribute `hcl:"enabled,optional"`
	Host     *hcl.Attribute `hcl:"host,optional"`
	Interval *hcl.Attribute `hcl:"interval,optional"`
}

// hostname is os.Hostname; tests replace it.
var hostname = os.Hostname

// hostNamePattern is what the sigsci engine takes as a host name.
var hostNamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,253}$`)

// staleAfter is the engine's default fleet_stale_after: a heartbeat at
// least this long lets the host count as stale between two reports.
const staleAfter = 30 * time.Minute

func (c *converter) report(r *rawReport) Report {
	where := c.file
	if r == nil {
		r = &rawReport{}
	} else {
		where = r.DefRange
	}
	rep := Report{
		Enabled:  c.flagOr(r.Enabled, true),
		Interval: c.duration(r.Interval, report.DefaultInterval, 5*time.Second, 24*time.Hour),
	}
	if r.Interval != nil && rep.Interval >= staleAfter {
		c.warnf(r.Interval.Range, "Report interval too long", "the sigsci engine counts a host as stale after fleet_stale_after (30m by default) without a report, and a stale host no longer holds back a retirement; keep interval well below it")
	}
	host, hostOK := c.text(r.Host)
	switch {
	case hostOK:
		if !hostNamePattern.MatchString(host) {
			c.errorf(r.Host.Range, "Invalid host", "host must be 1 to 253 characters of A-Z, a-z, 0-9, '.', '_' and '-', got %q", host)
		}
		rep.Host = host
	case rep.Enabled:
		name, err := hostname()
		if err == nil && !hostNamePattern.MatchString(name) {
			err = fmt.Errorf("%q is not 1 to 253 characters of A-Z, a-z, 0-9, '.', '_' and '-'", name)
		}
		if err != nil {
			c.errorf(where, "No host name for the report", `this machine's host name cannot name it in the fleet (%v): set report { host = "web-1" }, or report { enabled = false }`, err)
		}
		rep.Host = name
	}
	return rep
}

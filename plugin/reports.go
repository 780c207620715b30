package plugin

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Host reports: what each host says about its agent, how it is stored and
// validated.

// Limits of a host report; longer values are refused.
const (
	maxHostNameLen  = 253
	maxAccessKeyLen = 128
	maxUnitLen      = 256
	maxVersionLen   = 64
	// defaultMaxHostsPerSite bounds the reports one site holds, so that a
	// host token cannot fill storage with invented host names.
	defaultMaxHostsPerSite = 10000
)

var (
	hostNameRe = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	unitNameRe = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]+$`)
)

// hostReport is what one host last said about its agent. It holds no
// secret, so it is stored without seal wrapping.
type hostReport struct {
	AccessKey    string    `json:"access_key"`
	Unit         string    `json:"unit,omitempty"`
	AgentStarted time.Time `json:"agent_started,omitzero"`
	Version      string    `json:"version,omitempty"`
	ReportedAt   time.Time `json:"reported_at"`
}

func fleetSitePrefix(role, site string) string {
	return fleetPrefix + role + "/" + site + "/"
}

func fleetKey(role, site, host string) string {
	return fleetSitePrefix(role, site) + host
}

func (b *backend) loadReport(ctx context.Context, s logical.Storage, role, site, host string) (*hostReport, error) {
	return getJSON[hostReport](ctx, s, fleetKey(role, site, host), reportWhat(role, site, host))
}

// reportWhat names a host's report in a storage error: the tidy walks the
// reports of every role and site, and host names repeat across sites.
func reportWhat(role, site, host string) string {
	return fmt.Sprintf("the report of host %q of site %q of role %q", host, site, role)
}

// reportingHosts lists the hosts with a report for the site, sorted.
func (b *backend) reportingHosts(ctx context.Context, s logical.Storage, role, site string) ([]string, error) {
	hosts, err := s.List(ctx, fleetSitePrefix(role, site))
	if err != nil {
		return nil, fmt.Errorf("listing the hosts of site %q: %w", site, err)
	}
	sort.Strings(hosts)
	return hosts, nil
}

// loadReports reads every host report of a site, by host name.
func (b *backend) loadReports(ctx context.Context, s logical.Storage, role, site string) (map[string]hostReport, error) {
	hosts, err := b.reportingHosts(ctx, s, role, site)
	if err != nil {
		return nil, err
	}
	out := make(map[string]hostReport, len(hosts))
	for _, host := range hosts {
		r, err := b.loadReport(ctx, s, role, site, host)
		if err != nil {
			return nil, err
		}
		if r != nil {
			out[host] = *r
		}
	}
	return out, nil
}

// walkReports calls f with every host report of every role and site. A
// report that does not decode is passed over.
func walkReports(ctx context.Context, s logical.Storage, f func(role, site, host string, r hostReport) error) error {
	roles, err := s.List(ctx, fleetPrefix)
	if err != nil {
		return fmt.Errorf("listing the roles with host reports: %w", err)
	}
	for _, role := range roles {
		role = strings.TrimSuffix(role, "/")
		sites, err := s.List(ctx, fleetPrefix+role+"/")
		if err != nil {
			return fmt.Errorf("listing the sites of role %q with host reports: %w", role, err)
		}
		for _, site := range sites {
			site = strings.TrimSuffix(site, "/")
			if err := walkSiteReports(ctx, s, role, site, f); err != nil {
				return err
			}
		}
	}
	return nil
}

func walkSiteReports(ctx context.Context, s logical.Storage, role, site string, f func(role, site, host string, r hostReport) error) error {
	hosts, err := s.List(ctx, fleetSitePrefix(role, site))
	if err != nil {
		return fmt.Errorf("listing the hosts of site %q of role %q: %w", site, role, err)
	}
	for _, host := range hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		entry, err := s.Get(ctx, fleetKey(role, site, host))
		if err != nil {
			return fmt.Errorf("reading %s: %w", reportWhat(role, site, host), err)
		}
		var r hostReport
		if entry == nil || entry.DecodeJSON(&r) != nil {
			continue // gone meanwhile, or not a report
		}
		if err := f(role, site, host, r); err != nil {
			return err
		}
	}
	return nil
}

// parseReport validates the fields of a host report.
func parseReport(d *framework.FieldData) (*hostReport, error) {
	r := &hostReport{
		AccessKey: strings.TrimSpace(d.Get("access_key").(string)),
		Unit:      strings.TrimSpace(d.Get("unit").(string)),
		Version:   strings.TrimSpace(d.Get("version").(string)),
	}
	switch {
	case r.AccessKey == "":
		return nil, fmt.Errorf("access_key is required: the access key id the host's agent runs")
	case len(r.AccessKey) > maxAccessKeyLen || strings.ContainsFunc(r.AccessKey, notPrintable):
		return nil, fmt.Errorf("access_key must be at most %d printable characters without spaces (value not shown)", maxAccessKeyLen)
	case r.Unit != "" && (len(r.Unit) > maxUnitLen || !unitNameRe.MatchString(r.Unit)):
		return nil, fmt.Errorf("unit %q is not a systemd unit name", truncate(r.Unit, 64))
	case len(r.Version) > maxVersionLen || strings.ContainsFunc(r.Version, notPrintable):
		return nil, fmt.Errorf("version must be at most %d printable characters without spaces", maxVersionLen)
	}
	if raw := strings.TrimSpace(d.Get("agent_started").(string)); raw != "" {
		t, err := time.Parse(time.RFC3339Nano, raw)
		if err != nil {
			return nil, fmt.Errorf("agent_started %q is not an RFC 3339 time like 2026-12-01T10:00:00Z", truncate(raw, 64))
		}
		r.AgentStarted = t.UTC()
	}
	return r, nil
}

func notPrintable(c rune) bool { return c <= ' ' || c > '~' }

func validateHostName(host string) error {
	switch {
	case host == "":
		return fmt.Errorf("host name is empty")
	case len(host) > maxHostNameLen:
		return fmt.Errorf("host name is longer than %d characters", maxHostNameLen)
	case !hostNameRe.MatchString(host) || host == "." || host == "..":
		return fmt.Errorf("host name %q is invalid: use 1-%d of A-Z, a-z, 0-9, '.', '_', '-'", truncate(host, 64), maxHostNameLen)
	}
	return nil
}

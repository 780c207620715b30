package plugin

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The retirement guard: the non-primary key sets of a site are retired only
// once no host still runs one of them. A host that stopped reporting (stale)
// no longer counts; when no host of the site reports at all, or every one
// is stale (a fleet on stock Vault Agent), the newest demoted set must have
// been non-primary for retire_min_overlap, so hosts had time to re-read.

// maxNamedHosts bounds the hosts a refusal or warning names.
const maxNamedHosts = 10

// siteFleet is the reports of one site's hosts, judged against its keys.
type siteFleet struct {
	keys      *storedKeys
	reports   map[string]hostReport
	hosts     []string          // reporting and not stale
	onPrimary []string          // hosts on the primary set
	onOld     map[string]string // host -> non-primary access key
	onRetired map[string]string // host -> retired access key
	stale     []string
	verdict   retireVerdict
}

// retireVerdict says whether the site's non-primary sets may be retired now.
type retireVerdict struct {
	allowed bool
	// reason is why not, and when is when it will be, in words.
	reason, when string
	// after is when it will be allowed at the latest; zero if unknown.
	after time.Time
	// blockers are the hosts that still run a non-primary set.
	blockers []string
}

// text is the verdict in one sentence; "" when retiring is allowed.
func (v retireVerdict) text() string {
	if v.allowed {
		return ""
	}
	return v.reason + "; " + v.when
}

func isStale(r hostReport, cfg *mountConfig, now time.Time) bool {
	return now.Sub(r.ReportedAt) >= cfg.staleAfter()
}

// loadSiteFleet reads the reports of a site's hosts and judges them.
func (b *backend) loadSiteFleet(ctx context.Context, s logical.Storage, keys *storedKeys, cfg *mountConfig, now time.Time) (*siteFleet, error) {
	reports, err := b.loadReports(ctx, s, keys.Role, keys.Site)
	if err != nil {
		return nil, err
	}
	return judgeFleet(keys, reports, cfg, now), nil
}

// judgeFleet sorts the hosts by the key they run and decides the verdict.
func judgeFleet(keys *storedKeys, reports map[string]hostReport, cfg *mountConfig, now time.Time) *siteFleet {
	f := &siteFleet{
		keys:      keys,
		reports:   reports,
		hosts:     []string{},
		onPrimary: []string{},
		onOld:     map[string]string{},
		onRetired: map[string]string{},
		stale:     []string{},
	}
	for _, host := range slices.Sorted(maps.Keys(reports)) {
		r := reports[host]
		switch {
		case isStale(r, cfg, now):
			f.stale = append(f.stale, host)
			continue
		case r.AccessKey == keys.AccessKey:
			f.onPrimary = append(f.onPrimary, host)
		case keys.tracks(r.AccessKey):
			f.onOld[host] = r.AccessKey
		default:
			f.onRetired[host] = r.AccessKey
		}
		f.hosts = append(f.hosts, host)
	}
	f.verdict = f.judge(cfg, now)
	return f
}

func (f *siteFleet) judge(cfg *mountConfig, now time.Time) retireVerdict {
	if len(f.keys.NonPrimary) == 0 {
		return retireVerdict{allowed: true}
	}
	if len(f.onOld) > 0 {
		blockers := slices.Sorted(maps.Keys(f.onOld))
		var latest time.Time
		for _, host := range blockers {
			latest = laterOf(latest, f.reports[host].ReportedAt.Add(cfg.staleAfter()))
		}
		return retireVerdict{
			reason: fmt.Sprintf("%d host(s) still run a non-primary key: %s",
				len(blockers), f.nameHosts(blockers)),
			when: fmt.Sprintf("allowed once they report the primary key %s, or at %s at the latest, when the last of them has not reported for fleet_stale_after (%s)",
				f.keys.AccessKey, latest.UTC().Format(time.RFC3339), cfg.staleAfter()),
			after:    latest,
			blockers: blockers,
		}
	}
	if len(f.hosts) > 0 {
		return retireVerdict{allowed: true}
	}
	newest, demoted, _ := f.keys.newestDemotion()
	overlap := cfg.retireMinOverlap()
	if allowedAt := demoted.Add(overlap); now.Before(allowedAt) {
		return retireVerdict{
			reason: fmt.Sprintf("no host reports for site %q, and key set %s stopped being primary at %s, less than retire_min_overlap (%s) ago",
				f.keys.Site, newest.AccessKey, demoted.UTC().Format(time.RFC3339), overlap),
			when:  fmt.Sprintf("allowed at %s, or as soon as hosts report the primary key %s", allowedAt.UTC().Format(time.RFC3339), f.keys.AccessKey),
			after: allowedAt,
		}
	}
	return retireVerdict{allowed: true}
}

// nameHosts lists up to maxNamedHosts hosts with the key each runs.
func (f *siteFleet) nameHosts(hosts []string) string {
	named := make([]string, 0, min(len(hosts), maxNamedHosts))
	for _, host := range hosts[:min(len(hosts), maxNamedHosts)] {
		named = append(named, fmt.Sprintf("%s (%s)", host, f.reports[host].AccessKey))
	}
	out := strings.Join(named, ", ")
	if more := len(hosts) - len(named); more > 0 {
		out += fmt.Sprintf(" and %d more", more)
	}
	return out
}

// data is the fleet summary of the site, as the fleet paths answer it.
func (f *siteFleet) data() map[string]interface{} {
	data := map[string]interface{}{
		"primary_access_key":      f.keys.AccessKey,
		"non_primary_access_keys": f.keys.nonPrimaryAccessKeys(),
		"hosts":                   f.hosts,
		"on_primary":              f.onPrimary,
		"on_old_keys":             f.onOld,
		"on_retired_keys":         f.onRetired,
		"stale":                   f.stale,
		"retire_allowed":          f.verdict.allowed,
		"retire_blocked_by":       f.verdict.text(),
	}
	if !f.verdict.allowed && !f.verdict.after.IsZero() {
		data["retire_allowed_after"] = f.verdict.after.UTC().Format(time.RFC3339)
	}
	return data
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

package plugin

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The rotation status of one site, as "read rotate/sites/<site>" shows it:
// what is primary, what waits for retirement and why, what the schedule
// does next, and what Vault has not finished yet.

// siteAutomation is what the schedule and auto_retire make of one site now.
type siteAutomation struct {
	role  *roleEntry
	keys  *storedKeys
	fleet *siteFleet
	plan  sitePlan
}

// retireWaits is why auto_retire has not retired the site's old sets yet;
// "" if it is off or has nothing to wait for.
func (a *siteAutomation) retireWaits() string {
	if !a.role.autoRetire() || len(a.keys.NonPrimary) == 0 {
		return ""
	}
	return a.fleet.verdict.text()
}

// rotationWaits is why a scheduled rotation of the site does not start.
func (a *siteAutomation) rotationWaits() string {
	if !a.role.active() || len(a.keys.NonPrimary) == 0 {
		return ""
	}
	return "the next scheduled rotation waits until the non-primary key sets (" +
		strings.Join(a.keys.nonPrimaryAccessKeys(), ", ") + ") are retired"
}

// loadSiteAutomation works out the automation of site i of n of a role.
func (b *backend) loadSiteAutomation(ctx context.Context, s logical.Storage, r *roleEntry, keys *storedKeys, cfg *mountConfig, plan schedulePlan, i, n int, now time.Time) (*siteAutomation, error) {
	f, err := b.loadSiteFleet(ctx, s, keys, cfg, now)
	if err != nil {
		return nil, err
	}
	return &siteAutomation{role: r, keys: keys, fleet: f, plan: plan.site(i, n, keys.LastVaultRotation, now)}, nil
}

// rotationStatus is the data of a rotate read. The caller has checked that
// the role holds the site.
func (b *backend) rotationStatus(ctx context.Context, s logical.Storage, roleName, site string) (map[string]interface{}, error) {
	r, err := b.loadRole(ctx, s, roleName)
	if err != nil {
		return nil, err
	}
	keys, err := b.loadKeys(ctx, s, roleName, site)
	if err != nil {
		return nil, err
	}
	if r == nil || keys == nil {
		return nil, logical.CodedError(http.StatusNotFound, "the role or its keys of site "+site+" were deleted meanwhile")
	}
	cfg, err := b.loadConfig(ctx, s)
	if err != nil {
		return nil, err
	}
	sites, err := b.storedSites(ctx, s, roleName)
	if err != nil {
		return nil, err
	}
	now := b.now()
	a, err := b.loadSiteAutomation(ctx, s, r, keys, cfg, r.plan(now), max(slices.Index(sites, site), 0), len(sites), now)
	if err != nil {
		return nil, err
	}
	pending, err := b.pendingOperations(ctx, s, keys.Corp, site)
	if err != nil {
		return nil, err
	}

	data := map[string]interface{}{
		"role":               roleName,
		"site":               site,
		"corp":               keys.Corp,
		"primary_access_key": keys.AccessKey,
		"primary_since":      keys.Created.UTC().Format(time.RFC3339),
		"demoted":            keys.demoted(),
		"rotation_schedule":  r.RotationSchedule,
		"auto_retire":        r.autoRetire(),
		"pending_operations": pending,
		"fleet":              a.fleet.data(),
	}
	if !keys.LastVaultRotation.IsZero() {
		data["last_vault_rotation"] = keys.LastVaultRotation.UTC().Format(time.RFC3339)
	}
	if !a.plan.next.IsZero() {
		data["next_rotation"] = a.plan.next.UTC().Format(time.RFC3339)
	}
	if why := a.rotationWaits(); why != "" {
		data["rotation_waiting"] = why
	}
	if why := a.retireWaits(); why != "" {
		data["auto_retire_waiting"] = why
	}
	return data, nil
}

// pendingOperations lists the unfinished operations on one site.
func (b *backend) pendingOperations(ctx context.Context, s logical.Storage, corp, site string) ([]map[string]interface{}, error) {
	records, err := b.listWALOps(ctx, s)
	if err != nil {
		return nil, err
	}
	out := []map[string]interface{}{}
	for _, rec := range records {
		if rec.op.Corp != corp || rec.op.Site != site {
			continue
		}
		out = append(out, pendingData(rec, b.opAge(rec)))
	}
	return out, nil
}

// pendingData describes one unfinished operation: its kind, role, start
// and age (whole seconds), why recovery could not complete it yet, and when
// it was given up after pending_max_age.
func pendingData(rec walRecord, age time.Duration) map[string]interface{} {
	started := rec.started()
	data := map[string]interface{}{
		"operation": operationName(rec.kind),
		"role":      rec.op.Role,
		"started":   started.UTC().Format(time.RFC3339),
		"age":       int(max(age, 0) / time.Second),
	}
	if rec.op.LastError != "" {
		data["last_error"] = rec.op.LastError
	}
	if !rec.op.GivenUpAt.IsZero() {
		data["given_up_at"] = rec.op.GivenUpAt.UTC().Format(time.RFC3339)
	}
	return data
}

// operationName names the operation of a WAL entry kind.
func operationName(kind string) string {
	switch kind {
	case walKindRotate:
		return "rotate"
	case walKindRetire:
		return "retire"
	}
	return kind
}

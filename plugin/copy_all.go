package plugin

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// copyConcurrency bounds the sites copied at the same time by a copy of all
// sites, so a large corp does not flood the API.
const copyConcurrency = 4

// siteCopyResult is the outcome of copying one site during a copy of all.
type siteCopyResult struct {
	site    string
	outcome string
	err     error
}

func (b *backend) pathCredsCopyAll(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName := d.Get("role").(string)
	defer b.rlockRole(roleName)()
	r, err := b.requireRole(ctx, req, roleName)
	if err != nil {
		return nil, err
	}
	client, err := b.client(roleName, r)
	if err != nil {
		return nil, err
	}
	sites, err := client.ListSites(ctx, r.Corp)
	if err != nil {
		return nil, upstreamError(fmt.Sprintf("listing the sites of corp %q", r.Corp), err)
	}
	results := b.copySites(ctx, req.Storage, roleName, r, client, sites)

	stored, err := b.storedSites(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	return copySummary(results, stored), nil
}

// copySites copies every listed site with bounded concurrency.
func (b *backend) copySites(ctx context.Context, s logical.Storage, roleName string, r *roleEntry, client keysAPI, sites []sigsci.Site) []siteCopyResult {
	results := make([]siteCopyResult, len(sites))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(copyConcurrency, len(sites)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i] = b.copyOne(ctx, s, roleName, r, client, sites[i].Name)
			}
		}()
	}
	for i := range sites {
		next <- i
	}
	close(next)
	wg.Wait()
	return results
}

func (b *backend) copyOne(ctx context.Context, s logical.Storage, roleName string, r *roleEntry, client keysAPI, site string) siteCopyResult {
	if err := validateSite(site); err != nil {
		return siteCopyResult{site: site, err: fmt.Errorf("the API listed a site name Vault cannot store: %w", err)}
	}
	if err := ctx.Err(); err != nil {
		return siteCopyResult{site: site, err: fmt.Errorf("not attempted: %w", err)}
	}
	_, outcome, err := b.copySite(ctx, s, roleName, r, client, site)
	return siteCopyResult{site: site, outcome: outcome, err: err}
}

// copySummary builds the answer of a copy of all sites.
func copySummary(results []siteCopyResult, stored []string) *logical.Response {
	copied, unchanged := []string{}, []string{}
	failed := map[string]interface{}{}
	listed := make(map[string]bool, len(results))
	for _, res := range results {
		listed[res.site] = true
		switch {
		case res.err != nil:
			failed[res.site] = res.err.Error()
		case res.outcome == outcomeCopied:
			copied = append(copied, res.site)
		default:
			unchanged = append(unchanged, res.site)
		}
	}
	notAtAPI := []string{}
	for _, site := range stored {
		if !listed[site] {
			notAtAPI = append(notAtAPI, site)
		}
	}
	sort.Strings(copied)
	sort.Strings(unchanged)
	resp := &logical.Response{Data: map[string]interface{}{
		"total":      len(results),
		"copied":     copied,
		"unchanged":  unchanged,
		"failed":     failed,
		"not_at_api": notAtAPI,
	}}
	if len(failed) > 0 {
		resp.AddWarning(fmt.Sprintf("%d of %d site(s) failed and were left as they were; see \"failed\" and run the copy again",
			len(failed), len(results)))
	}
	if len(notAtAPI) > 0 {
		resp.AddWarning(fmt.Sprintf("%d stored site(s) are no longer listed by the API and were kept: %s",
			len(notAtAPI), strings.Join(notAtAPI, ", ")))
	}
	return resp
}

package plugin

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const pathCredsSiteHelpSyn = `Copy, read or delete the stored agent keys of one site.`

const pathCredsSiteHelpDesc = `
Write copies the site's primary key set from the Signal Sciences API into
Vault ("copied", or "unchanged" if Vault already holds it). A failed API call
never changes or deletes what is stored.

Read returns "accessKey" and "secretKey" of the primary key set, and metadata:
"site", "corp", "created" (when Vault stored this key set), "last_vault_rotation"
(absent until Vault first rotates the site), "non_primary_access_keys" (older sets
still live at the API until retired), and "rotation_period" and "ttl" (whole
seconds; see "config") so that consul-template re-reads in time. There is no
lease.

Delete removes the stored keys from Vault only; the key sets at the API stay.
`

const pathCredsAllHelpSyn = `Copy the keys of every site of the role's corp, or read all stored keys.`

const pathCredsAllHelpDesc = `
Write copies the primary key set of every site the API lists for the role's
corp, as many at a time as the API allows (up to copy_max_concurrency, see
"config"). It answers within at most 30s (sooner if the request's deadline
is nearer) with what is done so far: "state" (running, finished or stopped),
"total", "done", "left", "failed" (site: reason), "started", "finished",
"copied" and "unchanged" (site names) and, once finished, "not_at_api"
(sites stored in Vault that the API no longer lists; they are kept). What is
left goes on in the background on the active node. A write while a copy
runs answers that copy's progress; the next copy tries first the sites the
last one failed on. Sites that failed are left as they were; the others
stay stored.

Read is the directory of the stored sites, without any secret: "keys" (the
site names, sorted), "sites" (site: accessKey, created, last_vault_rotation,
non_primary_access_keys and "demoted", each older set's access_key and
demoted_at), "total" (all stored sites) and "copy", the state of the last
copy of all sites (as the write answers it, without the site lists; state
"interrupted" if the node that ran it went away). A secret key is only ever read
from creds/<role>/sites/<site>. A large answer pages: "limit" sites (default
1000, at most 5000) after the site named "after"; "next_after" is the "after"
of the next page, absent on the last. List answers only "keys".
`

// Paging of the all-sites read.
const (
	defaultReadAllLimit = 1000
	maxReadAllLimit     = 5000
)

func (b *backend) pathCreds() []*framework.Path {
	roleField := &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Name of the role.",
		Required:    true,
	}
	return []*framework.Path{
		{
			Pattern:      "creds/(?P<role>[^/]+)/sites/?$",
			DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixSigsci},
			Fields: map[string]*framework.FieldSchema{
				"role": roleField,
				"after": {
					Type:        framework.TypeString,
					Description: `On read: list the sites whose names sort after this one (the "next_after" of the previous page).`,
					Query:       true,
				},
				"limit": {
					Type:        framework.TypeInt,
					Description: "On read: the most sites in one answer. Default 1000, at most 5000.",
					Default:     defaultReadAllLimit,
					Query:       true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{
					Callback:     b.pathCredsReadAll,
					DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: "all-agent-keys"},
				},
				logical.ListOperation: &framework.PathOperation{
					Callback:     b.pathCredsList,
					DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: "agent-keys"},
				},
				logical.UpdateOperation: forwardedOperation(b.pathCredsCopyAll, &framework.DisplayAttributes{OperationVerb: "copy", OperationSuffix: "all-agent-keys"}),
			},
			HelpSynopsis:    pathCredsAllHelpSyn,
			HelpDescription: pathCredsAllHelpDesc,
		},
		{
			Pattern: "creds/(?P<role>[^/]+)/sites/(?P<site>[^/]+)$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixSigsci,
				OperationSuffix: "agent-keys",
			},
			Fields: map[string]*framework.FieldSchema{
				"role": roleField,
				"site": {
					Type:        framework.TypeString,
					Description: "Site name (lower case, as in the dashboard URL).",
					Required:    true,
				},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathCredsRead},
				logical.UpdateOperation: forwardedOperation(b.pathCredsCopy, &framework.DisplayAttributes{OperationVerb: "copy"}),
				logical.DeleteOperation: forwardedOperation(b.pathCredsDelete, nil),
			},
			HelpSynopsis:    pathCredsSiteHelpSyn,
			HelpDescription: pathCredsSiteHelpDesc,
		},
	}
}

func (b *backend) pathCredsReadAll(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName := d.Get("role").(string)
	if _, err := b.requireRole(ctx, req, roleName); err != nil {
		return nil, err
	}
	after, limit, err := readAllPageArgs(d)
	if err != nil {
		return nil, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	sites, err := b.storedSites(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	page, next := pageAfter(sites, after, limit)
	all, keys, err := b.describeSites(ctx, req.Storage, roleName, page, func(k *storedKeys) (map[string]interface{}, error) {
		return directoryData(k), nil
	})
	if err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	rotationPeriod, ttl := refreshHints(cfg)
	data := map[string]interface{}{
		"keys":            keys,
		"sites":           all,
		"total":           len(sites),
		"rotation_period": rotationPeriod,
		"ttl":             ttl,
	}
	if next != "" {
		data["next_after"] = next
	}
	copyState, err := b.copyStatus(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	if copyState != nil {
		data["copy"] = copyState
	}
	return &logical.Response{Data: data}, nil
}

// readAllPageArgs validates the paging fields of the all-sites read.
func readAllPageArgs(d *framework.FieldData) (string, int, error) {
	after := d.Get("after").(string)
	if after != "" {
		if err := validateSite(after); err != nil {
			return "", 0, fmt.Errorf("after: %w", err)
		}
	}
	limit := d.Get("limit").(int)
	if limit < 1 || limit > maxReadAllLimit {
		return "", 0, fmt.Errorf("limit must be between 1 and %d, got %d", maxReadAllLimit, limit)
	}
	return after, limit, nil
}

// pageAfter returns up to limit of the sorted names that sort after "after",
// and the name to continue after ("" on the last page).
func pageAfter(sorted []string, after string, limit int) ([]string, string) {
	start := sort.Search(len(sorted), func(i int) bool { return sorted[i] > after })
	end := min(start+limit, len(sorted))
	page := sorted[start:end]
	if end == len(sorted) || len(page) == 0 {
		return page, ""
	}
	return page, page[len(page)-1]
}

// directoryData is what the all-sites read shows of one site: its keys'
// metadata, never a secret.
func directoryData(k *storedKeys) map[string]interface{} {
	data := keysMetadata(k)
	data["demoted"] = k.demoted()
	return data
}

func (b *backend) pathCredsList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName := d.Get("role").(string)
	if _, err := b.requireRole(ctx, req, roleName); err != nil {
		return nil, err
	}
	sites, err := b.storedSites(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(sites), nil
}

// siteArgs validates the role and site of a creds request.
func (b *backend) siteArgs(ctx context.Context, req *logical.Request, d *framework.FieldData) (string, *roleEntry, string, error) {
	roleName := d.Get("role").(string)
	site := d.Get("site").(string)
	if err := validateSite(site); err != nil {
		return "", nil, "", logical.CodedError(http.StatusBadRequest, err.Error())
	}
	r, err := b.requireRole(ctx, req, roleName)
	if err != nil {
		return "", nil, "", err
	}
	return roleName, r, site, nil
}

func (b *backend) pathCredsRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName, _, site, err := b.siteArgs(ctx, req, d)
	if err != nil {
		return nil, err
	}
	k, err := b.loadKeysOr404(ctx, req.Storage, roleName, site, fmt.Sprintf(
		"no keys stored for site %q under role %q; copy them with: vault write -f %s",
		site, roleName, mountPath(req, "creds/"+roleName+"/sites/"+site)))
	if err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	data := keysData(k)
	data["rotation_period"], data["ttl"] = refreshHints(cfg)
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathCredsCopy(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	defer b.rlockRole(d.Get("role").(string))()
	roleName, r, site, err := b.siteArgs(ctx, req, d)
	if err != nil {
		return nil, err
	}
	client, err := b.client(roleName, r)
	if err != nil {
		return nil, err
	}
	k, outcome, err := b.copySite(ctx, req.Storage, roleName, r, client, site)
	if err != nil {
		return nil, err
	}
	data := keysMetadata(k)
	data["status"] = outcome
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathCredsDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName, r, site, err := b.siteArgs(ctx, req, d)
	if err != nil {
		return nil, err
	}
	defer b.lockSite(r.Corp, site)()
	k, err := b.loadKeysOr404(ctx, req.Storage, roleName, site, fmt.Sprintf(
		"no keys stored for site %q under role %q", site, roleName))
	if err != nil {
		return nil, err
	}
	if err := req.Storage.Delete(ctx, credsKey(roleName, site)); err != nil {
		return nil, fmt.Errorf("deleting stored keys of site %q: %w", site, err)
	}
	if len(k.NonPrimary) == 0 {
		return nil, nil
	}
	resp := &logical.Response{}
	resp.AddWarning(fmt.Sprintf(
		"Vault no longer tracks %d non-primary key set(s) of site %q that may still be live at the API (%s); copy the site again and retire them with: vault delete %s",
		len(k.NonPrimary), site, strings.Join(k.nonPrimaryAccessKeys(), ", "), mountPath(req, "rotate/sites/"+site)))
	return resp, nil
}

// copySite copies the primary key set of one site from the API into Vault.
// Nothing stored changes unless the API answered a complete key set. The
// caller holds the role's shared lock.
func (b *backend) copySite(ctx context.Context, s logical.Storage, roleName string, r *roleEntry, client keysAPI, site string) (*storedKeys, string, error) {
	defer b.lockSite(r.Corp, site)()

	ks, err := client.PrimaryKeys(ctx, r.Corp, site)
	if err != nil {
		return nil, "", upstreamError(fmt.Sprintf("reading the primary keys of site %q of corp %q", site, r.Corp), err)
	}
	if ks.AccessKey == "" || ks.SecretKey == "" {
		return nil, "", logical.CodedError(http.StatusBadGateway, fmt.Sprintf(
			"the API answered an incomplete key set for site %q; stored keys left unchanged", site))
	}
	stored, err := b.loadKeys(ctx, s, roleName, site)
	if err != nil {
		return nil, "", err
	}
	if stored != nil && stored.AccessKey == ks.AccessKey && stored.SecretKey == ks.SecretKey {
		return stored, outcomeUnchanged, nil
	}
	next := &storedKeys{Role: roleName, Corp: r.Corp, Site: site}
	if stored != nil {
		next = stored
	}
	next.promote(ks, b.now())
	if err := b.putKeys(ctx, s, next); err != nil {
		return nil, "", err
	}
	return next, outcomeCopied, nil
}

// Outcomes of copying one site.
const (
	outcomeCopied    = "copied"
	outcomeUnchanged = "unchanged"
)

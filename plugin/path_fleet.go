package plugin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// Host reports: each host says which access key its agent runs, so that
// retirement can wait for the fleet (guard.go judges the reports).

// fleetPrefix is where host reports are stored: fleet/<role>/<site>/<host>.
const fleetPrefix = "fleet/"

const pathFleetHostHelpSyn = `Report, read or forget the access key one host's agent runs.`

const pathFleetHostHelpDesc = `
A host (hostd, with its own token) writes which access key its agent process
started on: "access_key" is required and must be a key Vault handed out for
the site (the primary, a non-primary set or a recently retired one); any
other key is refused and logged without its value. "unit" (the agent's
systemd unit), "agent_started" (RFC 3339) and "version" (hostd's) are
optional. Vault records the time of the report; a host that stops reporting
is stale after fleet_stale_after (see config) and forgotten after
fleet_forget_after. Host names are 1-253 of A-Z, a-z, 0-9, '.', '_', '-'.

No secret is ever written or returned here. Read returns the report, delete
forgets a decommissioned host.
`

const pathFleetHostsHelpSyn = `List the hosts that report for a site.`

const pathFleetHostsHelpDesc = `
List answers "keys", the names of the hosts with a report for the site,
stale ones included.
`

const pathFleetSiteHelpSyn = `Show which hosts of a site run which key, and whether its old keys may be retired.`

const pathFleetSiteHelpDesc = `
Read answers "primary_access_key", "hosts" (hosts reporting, not stale),
"on_primary", "on_old_keys" (host -> non-primary access key),
"on_retired_keys" (host -> retired access key), "stale" (hosts that stopped
reporting), "retire_allowed" and "retire_blocked_by" (why not, in words, and
"retire_allowed_after" when that is known). A retirement ("delete
rotate/sites/<site>") is refused while a host that is not stale reports a
non-primary key, or, when no host reports at all (or every one is stale),
until the newest demoted set has been non-primary for retire_min_overlap.
`

const pathFleetAllHelpSyn = `Show the fleet view of every stored site of a role.`

const pathFleetAllHelpDesc = `
Read answers "keys" (the stored sites) and "sites": for each, the same
summary as "read fleet/<role>/sites/<site>". No secret appears.
`

func (b *backend) pathFleet() []*framework.Path {
	role := &framework.FieldSchema{Type: framework.TypeString, Description: "Name of the role.", Required: true}
	site := &framework.FieldSchema{Type: framework.TypeString, Description: "Site name.", Required: true}
	return []*framework.Path{
		fleetView("fleet/(?P<role>[^/]+)/sites/?$", map[string]*framework.FieldSchema{"role": role},
			logical.ReadOperation, b.pathFleetAllRead, "fleet", pathFleetAllHelpSyn, pathFleetAllHelpDesc),
		fleetView("fleet/(?P<role>[^/]+)/sites/(?P<site>[^/]+)$", map[string]*framework.FieldSchema{"role": role, "site": site},
			logical.ReadOperation, b.pathFleetSiteRead, "site-fleet", pathFleetSiteHelpSyn, pathFleetSiteHelpDesc),
		fleetView("fleet/(?P<role>[^/]+)/sites/(?P<site>[^/]+)/hosts/?$", map[string]*framework.FieldSchema{"role": role, "site": site},
			logical.ListOperation, b.pathFleetHostList, "reporting-hosts", pathFleetHostsHelpSyn, pathFleetHostsHelpDesc),
		{
			Pattern: "fleet/(?P<role>[^/]+)/sites/(?P<site>[^/]+)/hosts/(?P<host>[^/]+)$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixSigsci,
				OperationSuffix: "host-report",
			},
			Fields: map[string]*framework.FieldSchema{
				"role": role,
				"site": site,
				"host": {Type: framework.TypeString, Description: "Host name: 1-253 of A-Z, a-z, 0-9, '.', '_', '-'.", Required: true},
				"access_key": {
					Type:        framework.TypeString,
					Description: "Access key id the host's agent process started on (never the secret). Required.",
				},
				"unit":          {Type: framework.TypeString, Description: "The agent's systemd unit."},
				"agent_started": {Type: framework.TypeString, Description: "When the agent process started (RFC 3339)."},
				"version":       {Type: framework.TypeString, Description: "Version of the reporting program."},
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathFleetHostRead},
				logical.UpdateOperation: forwardedOperation(b.pathFleetHostWrite, &framework.DisplayAttributes{OperationVerb: "report", OperationSuffix: "host-key"}),
				logical.DeleteOperation: forwardedOperation(b.pathFleetHostDelete, &framework.DisplayAttributes{OperationVerb: "forget", OperationSuffix: "host"}),
			},
			HelpSynopsis:    pathFleetHostHelpSyn,
			HelpDescription: pathFleetHostHelpDesc,
		},
	}
}

// fleetView is a fleet path with one operation, which changes nothing.
func fleetView(pattern string, fields map[string]*framework.FieldSchema, op logical.Operation, callback framework.OperationFunc, suffix, synopsis, description string) *framework.Path {
	return &framework.Path{
		Pattern:      pattern,
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: operationPrefixSigsci},
		Fields:       fields,
		Operations: map[logical.Operation]framework.OperationHandler{
			op: &framework.PathOperation{Callback: callback, DisplayAttrs: &framework.DisplayAttributes{OperationSuffix: suffix}},
		},
		HelpSynopsis:    synopsis,
		HelpDescription: description,
	}
}

// fleetArgs validates the role and site of a fleet request and loads the
// role's stored keys of the site.
func (b *backend) fleetArgs(ctx context.Context, req *logical.Request, d *framework.FieldData) (string, string, *storedKeys, error) {
	roleName, site := d.Get("role").(string), d.Get("site").(string)
	if err := validateSite(site); err != nil {
		return "", "", nil, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	if _, err := b.requireRole(ctx, req, roleName); err != nil {
		return "", "", nil, err
	}
	keys, err := b.requireKeys(ctx, req, roleName, site)
	if err != nil {
		return "", "", nil, err
	}
	return roleName, site, keys, nil
}

// hostArg validates the host name of a fleet request.
func hostArg(d *framework.FieldData) (string, error) {
	host := d.Get("host").(string)
	if err := validateHostName(host); err != nil {
		return "", logical.CodedError(http.StatusBadRequest, err.Error())
	}
	return host, nil
}

// hostReportArgs validates the host, role and site of a request about one
// host's report and loads the role's stored keys of the site.
func (b *backend) hostReportArgs(ctx context.Context, req *logical.Request, d *framework.FieldData) (host, roleName, site string, keys *storedKeys, err error) {
	if host, err = hostArg(d); err != nil {
		return "", "", "", nil, err
	}
	if roleName, site, keys, err = b.fleetArgs(ctx, req, d); err != nil {
		return "", "", "", nil, err
	}
	return host, roleName, site, keys, nil
}

func (b *backend) pathFleetAllRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName := d.Get("role").(string)
	if _, err := b.requireRole(ctx, req, roleName); err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	sites, err := b.storedSites(ctx, req.Storage, roleName)
	if err != nil {
		return nil, err
	}
	now := b.now()
	all, keys, err := b.describeSites(ctx, req.Storage, roleName, sites, func(k *storedKeys) (map[string]interface{}, error) {
		f, err := b.loadSiteFleet(ctx, req.Storage, k, cfg, now)
		if err != nil {
			return nil, err
		}
		return f.data(), nil
	})
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{"keys": keys, "sites": all}}, nil
}

func (b *backend) pathFleetSiteRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName, site, keys, err := b.fleetArgs(ctx, req, d)
	if err != nil {
		return nil, err
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	f, err := b.loadSiteFleet(ctx, req.Storage, keys, cfg, b.now())
	if err != nil {
		return nil, err
	}
	data := f.data()
	data["role"] = roleName
	data["site"] = site
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathFleetHostList(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName, site := d.Get("role").(string), d.Get("site").(string)
	if err := validateSite(site); err != nil {
		return nil, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	if _, err := b.requireRole(ctx, req, roleName); err != nil {
		return nil, err
	}
	hosts, err := b.reportingHosts(ctx, req.Storage, roleName, site)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(hosts), nil
}

func (b *backend) pathFleetHostRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	host, roleName, site, keys, err := b.hostReportArgs(ctx, req, d)
	if err != nil {
		return nil, err
	}
	r, err := b.loadReport(ctx, req.Storage, roleName, site, host)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf("host %q has no report for site %q", host, site))
	}
	cfg, err := b.loadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	data := map[string]interface{}{
		"role":        roleName,
		"site":        site,
		"host":        host,
		"access_key":  r.AccessKey,
		"on_primary":  r.AccessKey == keys.AccessKey,
		"reported_at": r.ReportedAt.UTC().Format(time.RFC3339),
		"stale":       isStale(*r, cfg, b.now()),
		"unit":        r.Unit,
		"version":     r.Version,
	}
	if !r.AgentStarted.IsZero() {
		data["agent_started"] = r.AgentStarted.UTC().Format(time.RFC3339)
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathFleetHostWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	host, roleName, site, keys, err := b.hostReportArgs(ctx, req, d)
	if err != nil {
		return nil, err
	}
	report, err := parseReport(d)
	if err != nil {
		return nil, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	if !keys.tracks(report.AccessKey) && !keys.retired(report.AccessKey) {
		// A misconfigured host, or someone probing: the value could be
		// anything, even a secret pasted in the wrong place.
		b.Logger().Warn("refused a host report of an access key Vault never handed out for the site",
			"role", roleName, "site", site, "host", host, "remote_address", remoteAddr(req))
		return nil, logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"access_key is not a key Vault handed out for site %q (value not shown); check the host's configuration", site))
	}
	if err := b.checkRoomForHost(ctx, req, roleName, site, host); err != nil {
		return nil, err
	}
	report.ReportedAt = b.now().UTC()
	if err := putJSON(ctx, req.Storage, fleetKey(roleName, site, host), reportWhat(roleName, site, host), report); err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		"host":        host,
		"access_key":  report.AccessKey,
		"on_primary":  report.AccessKey == keys.AccessKey,
		"reported_at": report.ReportedAt.Format(time.RFC3339),
	}}, nil
}

// checkRoomForHost refuses a report from a new host once the site holds
// the most reports it may.
func (b *backend) checkRoomForHost(ctx context.Context, req *logical.Request, role, site, host string) error {
	existing, err := b.loadReport(ctx, req.Storage, role, site, host)
	if err != nil || existing != nil {
		return err
	}
	hosts, err := b.reportingHosts(ctx, req.Storage, role, site)
	if err != nil {
		return err
	}
	if len(hosts) >= b.maxHostsPerSite {
		return logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"site %q already holds the reports of %d hosts; forget decommissioned hosts with: vault delete %s",
			site, len(hosts), mountPath(req, "fleet/"+role+"/sites/"+site+"/hosts/<host>")))
	}
	return nil
}

// remoteAddr is the caller's address, for a log line about a refused report.
func remoteAddr(req *logical.Request) string {
	if req.Connection == nil {
		return ""
	}
	return req.Connection.RemoteAddr
}

func (b *backend) pathFleetHostDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	host, err := hostArg(d)
	if err != nil {
		return nil, err
	}
	roleName, site := d.Get("role").(string), d.Get("site").(string)
	if err := validateSite(site); err != nil {
		return nil, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	if err := validateRoleName(roleName); err != nil {
		return nil, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	// No role or stored keys needed: the report of a host of a site (or
	// role) that is gone must still be removable.
	if err := req.Storage.Delete(ctx, fleetKey(roleName, site, host)); err != nil {
		return nil, fmt.Errorf("deleting %s: %w", reportWhat(roleName, site, host), err)
	}
	return nil, nil
}

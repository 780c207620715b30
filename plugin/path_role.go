package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

const pathRoleListHelpSyn = `List the roles.`

const pathRoleListHelpDesc = `
"vault read <mount>/role/" and "vault list <mount>/role" both answer "keys",
the names of the configured roles.
`

const pathRoleHelpSyn = `Manage a role: the API identity (corp, email, API token) used for a corp's sites.`

const pathRoleHelpDesc = `
Write creates or updates a role. On create, corp, email and token are required.
On update, a field left out keeps its stored value, so the token need not be
sent again. The token is write-only: reads never return it.

Changing the corp of a role that holds stored keys is refused; delete the
stored keys first, or create another role.

api_url must be an https:// URL; http:// is accepted only for a loopback
host (127.0.0.0/8, ::1, localhost), such as a local simulator, so the token
never crosses a network in clear. Changing api_url needs the token again.
API errors in answers carry only the API's JSON "message", never a raw body.

A role may rotate its sites on a schedule: rotation_schedule (a standard
5-field cron spec, UTC), rotation_window (default 1h: a rotation starts only
within this long after its scheduled time; the sites are spread over its
first half), disable_automated_rotation (pause), and auto_retire (default true
with a schedule: retire the old sets as soon as the hosts' reports allow, see
fleet/). A scheduled rotation takes the same locks and write-ahead log as a
manual one, runs only on the active node, and skips a site whose old sets
still wait for retirement. Read shows them and "next_rotation".

Delete refuses to remove a role that still holds stored keys and says how many
sites it holds; pass force=true to delete the role and its stored keys from
Vault (key sets at the API are left untouched).
`

const apiURLDescription = "API root URL. Default " + sigsci.DefaultBaseURL + ". Must be https://; http:// is accepted " +
	"only for a loopback host (127.0.0.0/8, ::1, localhost), such as a local simulator. Changing it needs the token again."

func (b *backend) pathRoles() []*framework.Path {
	return []*framework.Path{
		{
			Pattern: "role/?$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixSigsci,
				OperationSuffix: "roles",
			},
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: b.pathRoleList},
				logical.ListOperation: &framework.PathOperation{Callback: b.pathRoleList},
			},
			HelpSynopsis:    pathRoleListHelpSyn,
			HelpDescription: pathRoleListHelpDesc,
		},
		{
			Pattern: "role/(?P<name>[^/]+)$",
			DisplayAttrs: &framework.DisplayAttributes{
				OperationPrefix: operationPrefixSigsci,
				OperationSuffix: "role",
			},
			Fields: map[string]*framework.FieldSchema{
				"name": {
					Type:        framework.TypeString,
					Description: "Name of the role.",
					Required:    true,
				},
				"corp": {
					Type:        framework.TypeString,
					Description: "Signal Sciences corp name (lower case, as in the dashboard URL).",
				},
				"email": {
					Type:        framework.TypeString,
					Description: "Email of the API user (sent as x-api-user).",
					DisplayAttrs: &framework.DisplayAttributes{
						Name: "API User Email",
					},
				},
				"token": {
					Type:        framework.TypeString,
					Description: "API access token of that user (sent as x-api-token). Write-only.",
					DisplayAttrs: &framework.DisplayAttributes{
						Name:      "API Token",
						Sensitive: true,
					},
				},
				"api_url": {
					Type:        framework.TypeString,
					Description: apiURLDescription,
					DisplayAttrs: &framework.DisplayAttributes{
						Name: "API URL",
					},
				},
				"force": {
					Type:        framework.TypeBool,
					Description: "On delete: also delete the role's stored keys from Vault.",
				},
				"rotation_schedule":          rotationScheduleField,
				"rotation_window":            rotationWindowField,
				"disable_automated_rotation": disableAutomatedRotationField,
				"auto_retire":                autoRetireField,
			},
			ExistenceCheck: b.pathRoleExists,
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation:   &framework.PathOperation{Callback: b.pathRoleRead},
				logical.CreateOperation: forwardedOperation(b.pathRoleWrite, nil),
				logical.UpdateOperation: forwardedOperation(b.pathRoleWrite, nil),
				logical.DeleteOperation: forwardedOperation(b.pathRoleDelete, nil),
			},
			HelpSynopsis:    pathRoleHelpSyn,
			HelpDescription: pathRoleHelpDesc,
		},
	}
}

// roleEntry is a stored role. Token is a secret: it is never returned,
// logged or put into an error.
type roleEntry struct {
	Corp   string `json:"corp"`
	Email  string `json:"email"`
	Token  string `json:"token"`
	APIURL string `json:"api_url"`
	roleSchedule
}

// String keeps the token out of any formatted output.
func (r roleEntry) String() string {
	return fmt.Sprintf("role{corp=%s email=%s api_url=%s token=<redacted>}", r.Corp, r.Email, r.APIURL)
}

// Format keeps the token out of every fmt verb.
func (r roleEntry) Format(f fmt.State, verb rune) { formatRedacted(f, verb, r) }

// loadRole returns the role, from memory once read, or nil if there is none.
func (b *backend) loadRole(ctx context.Context, s logical.Storage, name string) (*roleEntry, error) {
	if r, ok := b.memo.role(name); ok {
		return r, nil
	}
	gen := b.memo.generation()
	r, err := getJSON[roleEntry](ctx, s, rolePrefix+name, roleWhat(name))
	if err != nil || r == nil {
		return nil, err
	}
	b.memo.keepRole(gen, name, r)
	return r, nil
}

// roleWhat names a stored role in a storage error.
func roleWhat(name string) string {
	return fmt.Sprintf("role %q", name)
}

// requireRole loads a role and answers 404 if it does not exist.
func (b *backend) requireRole(ctx context.Context, req *logical.Request, name string) (*roleEntry, error) {
	if err := validateRoleName(name); err != nil {
		return nil, logical.CodedError(http.StatusBadRequest, err.Error())
	}
	r, err := b.loadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, logical.CodedError(http.StatusNotFound, fmt.Sprintf(
			"role %q does not exist; create it with: vault write %s corp=... email=... token=...",
			name, mountPath(req, rolePrefix+name)))
	}
	return r, nil
}

// roleAndSites loads a role (404 if it does not exist) and the sites it
// holds keys for.
func (b *backend) roleAndSites(ctx context.Context, req *logical.Request, name string) (*roleEntry, []string, error) {
	r, err := b.requireRole(ctx, req, name)
	if err != nil {
		return nil, nil, err
	}
	sites, err := b.storedSites(ctx, req.Storage, name)
	if err != nil {
		return nil, nil, err
	}
	return r, sites, nil
}

func (b *backend) listRoles(ctx context.Context, s logical.Storage) ([]string, error) {
	names, err := s.List(ctx, rolePrefix)
	if err != nil {
		return nil, fmt.Errorf("listing roles: %w", err)
	}
	sort.Strings(names)
	return names, nil
}

func (b *backend) pathRoleExists(ctx context.Context, req *logical.Request, d *framework.FieldData) (bool, error) {
	name := d.Get("name").(string)
	if validateRoleName(name) != nil {
		return false, nil
	}
	r, err := b.loadRole(ctx, req.Storage, name)
	return r != nil, err
}

func (b *backend) pathRoleList(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	names, err := b.listRoles(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	return logical.ListResponse(names), nil
}

func (b *backend) pathRoleRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	r, sites, err := b.roleAndSites(ctx, req, name)
	if err != nil {
		return nil, err
	}
	data := scheduleData(r.roleSchedule, b.now())
	data["corp"] = r.Corp
	data["email"] = r.Email
	data["api_url"] = r.APIURL
	data["token_configured"] = r.Token != ""
	data["stored_sites"] = len(sites)
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathRoleWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	if err := validateRoleName(name); err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	defer b.lockRole(name)()

	stored, err := b.loadRole(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	r, err := mergeRole(stored, d, b.now())
	if err != nil {
		return logical.ErrorResponse(err.Error()), nil
	}
	if stored != nil && stored.Corp != r.Corp {
		sites, err := b.storedSites(ctx, req.Storage, name)
		if err != nil {
			return nil, err
		}
		if len(sites) > 0 {
			return logical.ErrorResponse(
				"role %q holds stored keys for %d site(s) of corp %q; delete them before changing its corp, or create another role",
				name, len(sites), stored.Corp), nil
		}
	}

	if err := putJSON(ctx, req.Storage, rolePrefix+name, roleWhat(name), r); err != nil {
		return nil, err
	}
	b.roleChanged(name)
	return nil, nil
}

// mergeRole applies the request's fields to the stored role (nil on create)
// and validates the result. Fields left out keep their stored values.
func mergeRole(stored *roleEntry, d *framework.FieldData, now time.Time) (*roleEntry, error) {
	r := &roleEntry{APIURL: sigsci.DefaultBaseURL}
	if stored != nil {
		*r = *stored
	}
	if v, ok := d.GetOk("corp"); ok {
		r.Corp = strings.TrimSpace(v.(string))
	}
	if v, ok := d.GetOk("email"); ok {
		r.Email = strings.TrimSpace(v.(string))
	}
	_, tokenGiven := d.GetOk("token")
	if tokenGiven {
		// A token read from a file (token=@token.txt) usually ends in a newline.
		r.Token = strings.TrimSpace(d.Get("token").(string))
	}
	if v, ok := d.GetOk("api_url"); ok {
		r.APIURL = strings.TrimSpace(v.(string))
	}
	if err := validateCorp(r.Corp); err != nil {
		return nil, err
	}
	if err := validateEmail(r.Email); err != nil {
		return nil, err
	}
	if err := validateToken(r.Token); err != nil {
		return nil, err
	}
	u, err := normaliseAPIURL(r.APIURL)
	if err != nil {
		return nil, err
	}
	r.APIURL = u
	if stored != nil && !tokenGiven && r.APIURL != stored.APIURL {
		// The stored token would otherwise be sent to a host nobody who
		// knows the token has approved.
		return nil, errors.New("changing api_url sends the API token to a new host: give the token again (token=@token.txt)")
	}
	if err := mergeSchedule(&r.roleSchedule, d, now); err != nil {
		return nil, err
	}
	return r, nil
}

func (b *backend) pathRoleDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	name := d.Get("name").(string)
	force := d.Get("force").(bool)
	defer b.lockRole(name)()
	r, sites, err := b.roleAndSites(ctx, req, name)
	if err != nil {
		return nil, err
	}
	pending, err := b.pendingWALSites(ctx, req.Storage, name)
	if err != nil {
		return nil, err
	}
	if !force && len(sites) > 0 {
		return logical.ErrorResponse(
			"role %q holds stored keys for %d site(s) (%s); delete them first or pass force=true to delete them from Vault too",
			name, len(sites), strings.Join(sites, ", ")), nil
	}
	if !force && len(pending) > 0 {
		return logical.ErrorResponse(
			"role %q has an unfinished rotation or retirement for site(s) %s that Vault is still completing; retry in a minute or pass force=true",
			name, strings.Join(pending, ", ")), nil
	}

	unlock := b.lockSites(r.Corp, sites)
	defer unlock()
	for _, site := range sites {
		if err := req.Storage.Delete(ctx, credsKey(name, site)); err != nil {
			return nil, fmt.Errorf("deleting stored keys of site %q: %w", site, err)
		}
	}
	if err := req.Storage.Delete(ctx, copyRecordKey(name)); err != nil {
		return nil, fmt.Errorf("deleting the state of the copy of all sites of role %q: %w", name, err)
	}
	if err := req.Storage.Delete(ctx, rolePrefix+name); err != nil {
		return nil, fmt.Errorf("deleting role %q: %w", name, err)
	}
	b.roleChanged(name)
	b.forgetCopy(name)

	if len(sites) == 0 && len(pending) == 0 {
		return nil, nil
	}
	resp := &logical.Response{Data: map[string]interface{}{"deleted_sites": sites}}
	if len(pending) > 0 {
		resp.AddWarning(fmt.Sprintf(
			"unfinished operations on site(s) %s can no longer be completed without the role; check their key sets at the API",
			strings.Join(pending, ", ")))
	}
	return resp, nil
}

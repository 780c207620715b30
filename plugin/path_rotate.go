package plugin

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const pathRotateHelpSyn = `Rotate a site's agent keys, or retire its non-primary key sets.`

const pathRotateHelpDesc = `
Write creates a new key set for the site at the Signal Sciences API; it becomes
the primary set and is stored in Vault. The previous set stays valid as a
non-primary set, so hosts keep working until they have read the new keys. The
answer holds the new "accessKey" and metadata, never the secret: read it from
creds/<role>/sites/<site>.

Delete retires the site's non-primary key sets that this mount stored (the
sets it rotated away from): each is deleted at the API and from Vault.
Neither operation ever deletes a key set made elsewhere (another mount or
Vault cluster, Terraform, a person in the dashboard): both answers list such
sets by access key as "untracked" and leave them alone. Delete is refused if the API's primary set is
not the one Vault stores (copy the site first), and, unless force=true, while
the fleet guard refuses: a host that is not stale still reports a
non-primary key, or no host reports at all and the newest demoted set has
been non-primary for less than retire_min_overlap (see fleet/ and config).
The refusal names up to ten hosts with their key and says when retiring will
be allowed; a forced retirement answers with the same list as a warning.

Read shows the primary access key, the demoted sets with "demoted_at", the
schedule's "next_rotation", "pending_operations", why auto_retire waits, and
the fleet summary of fleet/<role>/sites/<site>. It returns no secret. Each
pending operation (a rotation or retirement Vault is still completing) has
its "operation", "role", "started", "age" (seconds), "last_error" (why it
could not be completed yet, if it failed) and, once it has been pending for
pending_max_age (see config), "given_up_at": it then no longer holds up the
site, and the next successful rotate or retire reports it in a warning.

rotate/<role>/sites/<site> is the same with the role in the path, so that
ACLs can limit rotation and retirement to one role.

With expected_primary=<accessKey>, write is a compare-and-swap: it rotates
only if the stored primary is that access key, and is refused (412, nothing
changed) once the primary moved on. A rotate retried after its answer was
lost (a timeout, a change of active node) then cannot rotate twice. An
unfinished rotation of the site is completed first, so the comparison sees
the primary it moved to.

The site must already be stored under a role. If several roles hold a site of
that name, say which with role=<name>.

Both operations are crash-safe: an interrupted rotation or retirement is
completed from the API's real state when the plugin starts, by Vault's
periodic rollback, or before the next operation on the same site. While an
unfinished operation cannot be completed, rotate and retire of its site are
refused (503). A rotation that another instance of the plugin may still be
running (just after a plugin reload or a change of active node) and whose
new set the API does not list yet is waited for, at most a few minutes.
`

// pathRotate is rotate/sites/<site>, and the same with the role in the
// path (rotate/<role>/sites/<site>), so that ACLs can limit rotation and
// retirement to one role.
func (b *backend) pathRotate() []*framework.Path {
	return []*framework.Path{
		b.rotatePath("rotate/sites/(?P<site>[^/]+)$", "", &framework.FieldSchema{
			Type:        framework.TypeString,
			Description: "Role that holds the site; needed only if several roles hold a site of this name.",
		}),
		b.rotatePath("rotate/(?P<role>[^/]+)/sites/(?P<site>[^/]+)$", "role-",
			&framework.FieldSchema{Type: framework.TypeString, Description: "Role that holds the site.", Required: true}),
	}
}

// rotatePath is one of the rotate paths; scope prefixes its OpenAPI
// suffixes (see rotateOperations).
func (b *backend) rotatePath(pattern, scope string, role *framework.FieldSchema) *framework.Path {
	return &framework.Path{
		Pattern: pattern,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: operationPrefixSigsci,
			OperationSuffix: scope + "agent-keys",
		},
		Fields: map[string]*framework.FieldSchema{
			"site":             {Type: framework.TypeString, Description: "Site name.", Required: true},
			"role":             role,
			"force":            forceRetireField,
			"expected_primary": expectedPrimaryField,
		},
		Operations:      b.rotateOperations(scope),
		HelpSynopsis:    pathRotateHelpSyn,
		HelpDescription: pathRotateHelpDesc,
	}
}

// rotateOperations are the read, rotate and retire operations of a rotate
// path. scope prefixes their OpenAPI suffixes: "" for the documented
// rotate/sites/<site>, "role-" for rotate/<role>/sites/<site>, so that each
// path keeps ids of its own.
func (b *backend) rotateOperations(scope string) map[logical.Operation]framework.OperationHandler {
	return map[logical.Operation]framework.OperationHandler{
		logical.ReadOperation: &framework.PathOperation{
			Callback:     b.pathRotateRead,
			DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: scope + "rotation-status"},
		},
		logical.UpdateOperation: forwardedOperation(b.pathRotateWrite, &framework.DisplayAttributes{OperationVerb: "rotate"}),
		logical.DeleteOperation: forwardedOperation(b.pathRotateDelete, &framework.DisplayAttributes{OperationVerb: "retire", OperationSuffix: scope + "non-primary-agent-keys"}),
	}
}

func (b *backend) pathRotateRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName, site, err := b.roleForSite(ctx, req, d)
	if err != nil {
		return nil, err
	}
	status, err := b.rotationStatus(ctx, req.Storage, roleName, site)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: status}, nil
}

func (b *backend) pathRotateWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName, site, err := b.roleForSite(ctx, req, d)
	if err != nil {
		return nil, err
	}
	return b.rotateSite(ctx, req, roleName, site, d.Get("expected_primary").(string))
}

func (b *backend) pathRotateDelete(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	roleName, site, err := b.roleForSite(ctx, req, d)
	if err != nil {
		return nil, err
	}
	return b.retireSite(ctx, req, roleName, site, d.Get("force").(bool))
}

// roleForSite finds the role whose stored keys hold the site: the one named
// by "role", or the only role that holds it.
func (b *backend) roleForSite(ctx context.Context, req *logical.Request, d *framework.FieldData) (string, string, error) {
	site := d.Get("site").(string)
	if err := validateSite(site); err != nil {
		return "", "", logical.CodedError(http.StatusBadRequest, err.Error())
	}
	if roleName := d.Get("role").(string); roleName != "" {
		if _, err := b.requireRole(ctx, req, roleName); err != nil {
			return "", "", err
		}
		if _, err := b.requireKeys(ctx, req, roleName, site); err != nil {
			return "", "", err
		}
		return roleName, site, nil
	}

	roles, err := b.listRoles(ctx, req.Storage)
	if err != nil {
		return "", "", err
	}
	var holders []string
	for _, roleName := range roles {
		k, err := b.loadKeys(ctx, req.Storage, roleName, site)
		if err != nil {
			return "", "", err
		}
		if k != nil {
			holders = append(holders, roleName)
		}
	}
	switch len(holders) {
	case 0:
		return "", "", logical.CodedError(http.StatusNotFound, fmt.Sprintf(
			"no role holds keys for site %q; copy them first with: vault write -f %s",
			site, mountPath(req, "creds/<role>/sites/"+site)))
	case 1:
		return holders[0], site, nil
	default:
		return "", "", logical.CodedError(http.StatusBadRequest, fmt.Sprintf(
			"site %q is held by several roles (%s); say which with role=<name>",
			site, strings.Join(holders, ", ")))
	}
}

var expectedPrimaryField = &framework.FieldSchema{
	Type:        framework.TypeString,
	Description: "On write: rotate only if the site's stored primary access key is this one (compare-and-swap), else refuse with 412; makes a retried rotate safe.",
}

var forceRetireField = &framework.FieldSchema{
	Type:        framework.TypeBool,
	Description: "On delete: retire even though hosts may still run a non-primary key (the fleet guard refuses).",
}

package config

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
)

// This file holds the auto_auth block: its raw schema per method and its
// conversion.

type rawAutoAuth struct {
	DefRange hcl.Range    `hcl:",def_range"`
	Methods  []*rawMethod `hcl:"method,block"`
}

// rawMethod keeps the body so it can be decoded with the schema of the named
// method, which makes an argument of another method an "Unsupported argument".
type rawMethod struct {
	Type      string    `hcl:"type,label"`
	TypeRange hcl.Range `hcl:"type,label_range"`
	DefRange  hcl.Range `hcl:",def_range"`
	Body      hcl.Body  `hcl:",remain"`
}

type rawAppRole struct {
	MountPath                      *hcl.Attribute `hcl:"mount_path,optional"`
	RoleIDFile                     *hcl.Attribute `hcl:"role_id_file,optional"`
	SecretIDFile                   *hcl.Attribute `hcl:"secret_id_file,optional"`
	RemoveSecretIDFileAfterReading *hcl.Attribute `hcl:"remove_secret_id_file_after_reading,optional"`
	SecretIDResponseWrappingPath   *hcl.Attribute `hcl:"secret_id_response_wrapping_path,optional"`
}

type rawCert struct {
	MountPath *hcl.Attribute `hcl:"mount_path,optional"`
	Name      *hcl.Attribute `hcl:"name,optional"`
}

type rawJWT struct {
	MountPath *hcl.Attribute `hcl:"mount_path,optional"`
	Role      *hcl.Attribute `hcl:"role,optional"`
	Path      *hcl.Attribute `hcl:"path,optional"`
}

type rawTokenFile struct {
	Path *hcl.Attribute `hcl:"path,optional"`
}

const methodChoice = "approle, cert, jwt or token_file"

func (c *converter) autoAuth(r *rawAutoAuth, v Vault) AutoAuth {
	if r == nil {
		c.errorf(c.file, "Missing auto_auth block", `hostd needs an auto_auth block with one method: %s`, methodChoice)
		return AutoAuth{}
	}
	if len(r.Methods) == 0 {
		c.errorf(r.DefRange, "Missing auth method", `auto_auth needs one method block, such as method "approle" { ... }; choose %s`, methodChoice)
		return AutoAuth{}
	}
	for _, extra := range r.Methods[1:] {
		c.errorf(extra.DefRange, "More than one auth method", "auto_auth takes exactly one method block; the first is at line %d", r.Methods[0].DefRange.Start.Line)
	}
	m := r.Methods[0]
	switch m.Type {
	case auth.MethodAppRole:
		return c.appRole(m)
	case auth.MethodCert:
		return c.cert(m, v)
	case auth.MethodJWT:
		return c.jwt(m)
	case auth.MethodTokenFile:
		return c.tokenFile(m)
	default:
		c.errorf(m.TypeRange, "Unknown auth method", "method %q is not supported; choose %s", m.Type, methodChoice)
		return AutoAuth{}
	}
}

func (c *converter) appRole(m *rawMethod) AutoAuth {
	var r rawAppRole
	c.diags = append(c.diags, gohcl.DecodeBody(m.Body, nil, &r)...)
	a := AutoAuth{
		Method:                         auth.MethodAppRole,
		MountPath:                      c.mountPath(r.MountPath, auth.DefaultMountPath(auth.MethodAppRole)),
		RemoveSecretIDFileAfterReading: c.flag(r.RemoveSecretIDFileAfterReading),
	}
	if c.required(r.RoleIDFile, &a.RoleIDFile, m.DefRange, `method "approle"`, "role_id_file") {
		c.absPath(a.RoleIDFile, r.RoleIDFile.Range, "role_id_file")
	}
	if c.required(r.SecretIDFile, &a.SecretIDFile, m.DefRange, `method "approle"`, "secret_id_file") {
		c.absPath(a.SecretIDFile, r.SecretIDFile.Range, "secret_id_file")
	}
	a.SecretIDResponseWrappingPath = c.vaultPath(r.SecretIDResponseWrappingPath, "auth/approle/role/waf/secret-id")
	return a
}

func (c *converter) cert(m *rawMethod, v Vault) AutoAuth {
	var r rawCert
	c.diags = append(c.diags, gohcl.DecodeBody(m.Body, nil, &r)...)
	if v.ClientCert == "" || v.ClientKey == "" {
		c.errorf(m.DefRange, "Cert login without a certificate", `method "cert" logs in with the TLS client certificate: set client_cert and client_key in the vault block`)
	}
	return AutoAuth{
		Method:    auth.MethodCert,
		MountPath: c.mountPath(r.MountPath, auth.DefaultMountPath(auth.MethodCert)),
		CertName:  c.asWritten(r.Name),
	}
}

func (c *converter) jwt(m *rawMethod) AutoAuth {
	var r rawJWT
	c.diags = append(c.diags, gohcl.DecodeBody(m.Body, nil, &r)...)
	a := AutoAuth{Method: auth.MethodJWT, MountPath: c.mountPath(r.MountPath, auth.DefaultMountPath(auth.MethodJWT))}
	var role, path string
	if c.required(r.Role, &role, m.DefRange, `method "jwt"`, "role") {
		if strings.TrimSpace(role) == "" || strings.ContainsAny(role, "/ \t\n") {
			c.errorf(r.Role.Range, "Invalid role", `role must name a role of the jwt auth method, such as "waf", got %q`, role)
		} else {
			a.Role = role
		}
	}
	if c.required(r.Path, &path, m.DefRange, `method "jwt"`, "path") && c.absPath(path, r.Path.Range, "path") {
		a.JWTFile = path
	}
	return a
}

func (c *converter) tokenFile(m *rawMethod) AutoAuth {
	var r rawTokenFile
	c.diags = append(c.diags, gohcl.DecodeBody(m.Body, nil, &r)...)
	a := AutoAuth{Method: auth.MethodTokenFile}
	if c.required(r.Path, &a.TokenFile, m.DefRange, `method "token_file"`, "path") {
		c.absPath(a.TokenFile, r.Path.Range, "path")
	}
	return a
}

func (c *converter) mountPath(a *hcl.Attribute, def string) string {
	value, ok := c.text(a)
	if !ok {
		return def
	}
	p := strings.Trim(value, "/")
	if p == "" || strings.ContainsAny(p, " \t\n") || strings.Contains(p, "..") {
		c.errorf(a.Range, "Invalid mount_path", "mount_path must name the auth mount, such as %q, got %q", def, value)
		return def
	}
	return p
}

// vaultPath checks a Vault API path (without /v1/) and returns it without
// leading or trailing slashes; "" when it is not written or not one.
func (c *converter) vaultPath(a *hcl.Attribute, example string) string {
	value, ok := c.text(a)
	if !ok {
		return ""
	}
	p := strings.Trim(value, "/")
	if p == "" || strings.ContainsAny(p, " \t\n") || strings.Contains(p, "..") || strings.HasPrefix(p, "v1/") {
		c.errorf(a.Range, "Invalid "+a.Name, "%s must be the Vault path the wrapped answer came from, such as %q, got %q", a.Name, example, value)
		return ""
	}
	return p
}

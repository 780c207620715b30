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
	MountPath                         string    `hcl:"mount_path,optional"`
	MountPathRange                    hcl.Range `hcl:"mount_path,attr_range"`
	RoleIDFile                        string    `hcl:"role_id_file,optional"`
	RoleIDFileRange                   hcl.Range `hcl:"role_id_file,attr_range"`
	SecretIDFile                      string    `hcl:"secret_id_file,optional"`
	SecretIDFileRange                 hcl.Range `hcl:"secret_id_file,attr_range"`
	RemoveSecretIDFileAfterReading    bool      `hcl:"remove_secret_id_file_after_reading,optional"`
	SecretIDResponseWrappingPath      string    `hcl:"secret_id_response_wrapping_path,optional"`
	SecretIDResponseWrappingPathRange hcl.Range `hcl:"secret_id_response_wrapping_path,attr_range"`
}

type rawCert struct {
	MountPath      string    `hcl:"mount_path,optional"`
	MountPathRange hcl.Range `hcl:"mount_path,attr_range"`
	Name           string    `hcl:"name,optional"`
}

type rawJWT struct {
	MountPath      string    `hcl:"mount_path,optional"`
	MountPathRange hcl.Range `hcl:"mount_path,attr_range"`
	Role           string    `hcl:"role,optional"`
	RoleRange      hcl.Range `hcl:"role,attr_range"`
	Path           string    `hcl:"path,optional"`
	PathRange      hcl.Range `hcl:"path,attr_range"`
}

type rawTokenFile struct {
	Path      string    `hcl:"path,optional"`
	PathRange hcl.Range `hcl:"path,attr_range"`
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
		MountPath:                      c.mountPath(r.MountPath, r.MountPathRange, auth.DefaultMountPath(auth.MethodAppRole)),
		RoleIDFile:                     r.RoleIDFile,
		SecretIDFile:                   r.SecretIDFile,
		RemoveSecretIDFileAfterReading: r.RemoveSecretIDFileAfterReading,
	}
	if c.required(r.RoleIDFileRange, m.DefRange, `method "approle"`, "role_id_file") {
		c.absPath(r.RoleIDFile, r.RoleIDFileRange, "role_id_file")
	}
	if c.required(r.SecretIDFileRange, m.DefRange, `method "approle"`, "secret_id_file") {
		c.absPath(r.SecretIDFile, r.SecretIDFileRange, "secret_id_file")
	}
	if c.usable(r.SecretIDResponseWrappingPathRange) {
		a.SecretIDResponseWrappingPath = c.vaultPath(r.SecretIDResponseWrappingPath, r.SecretIDResponseWrappingPathRange,
			"secret_id_response_wrapping_path", "auth/approle/role/waf/secret-id")
	}
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
		MountPath: c.mountPath(r.MountPath, r.MountPathRange, auth.DefaultMountPath(auth.MethodCert)),
		CertName:  r.Name,
	}
}

func (c *converter) jwt(m *rawMethod) AutoAuth {
	var r rawJWT
	c.diags = append(c.diags, gohcl.DecodeBody(m.Body, nil, &r)...)
	a := AutoAuth{Method: auth.MethodJWT, MountPath: c.mountPath(r.MountPath, r.MountPathRange, auth.DefaultMountPath(auth.MethodJWT))}
	if c.required(r.RoleRange, m.DefRange, `method "jwt"`, "role") {
		if strings.TrimSpace(r.Role) == "" || strings.ContainsAny(r.Role, "/ \t\n") {
			c.errorf(r.RoleRange, "Invalid role", `role must name a role of the jwt auth method, such as "waf", got %q`, r.Role)
		} else {
			a.Role = r.Role
		}
	}
	if c.required(r.PathRange, m.DefRange, `method "jwt"`, "path") && c.absPath(r.Path, r.PathRange, "path") {
		a.JWTFile = r.Path
	}
	return a
}

func (c *converter) tokenFile(m *rawMethod) AutoAuth {
	var r rawTokenFile
	c.diags = append(c.diags, gohcl.DecodeBody(m.Body, nil, &r)...)
	if c.required(r.PathRange, m.DefRange, `method "token_file"`, "path") {
		c.absPath(r.Path, r.PathRange, "path")
	}
	return AutoAuth{Method: auth.MethodTokenFile, TokenFile: r.Path}
}

func (c *converter) mountPath(value string, rng hcl.Range, def string) string {
	if !c.usable(rng) {
		return def
	}
	p := strings.Trim(value, "/")
	if p == "" || strings.ContainsAny(p, " \t\n") || strings.Contains(p, "..") {
		c.errorf(rng, "Invalid mount_path", "mount_path must name the auth mount, such as %q, got %q", def, value)
		return def
	}
	return p
}

// vaultPath checks a Vault API path (without /v1/) and returns it without
// leading or trailing slashes; "" when it is not one.
func (c *converter) vaultPath(value string, rng hcl.Range, name, example string) string {
	p := strings.Trim(value, "/")
	if p == "" || strings.ContainsAny(p, " \t\n") || strings.Contains(p, "..") || strings.HasPrefix(p, "v1/") {
		c.errorf(rng, "Invalid "+name, "%s must be the Vault path the wrapped answer came from, such as %q, got %q", name, example, value)
		return ""
	}
	return p
}

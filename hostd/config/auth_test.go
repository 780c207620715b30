package config

import (
	"testing"

	"github.com/sigsci-keys/sigsci-keys/hostd/auth"
)

const vaultBlock = "vault { address = \"https://v:8200\" }\n"

// certVault is a vault block (five lines) with the client certificate a
// cert login needs.
const certVault = "vault {\n  address = \"https://v:8200\"\n  client_cert = \"/c.pem\"\n  client_key = \"/k.pem\"\n}\n"

func authFile(method string) string {
	return vaultBlock + "auto_auth {\n" + method + "}\n"
}

func TestParseJWTMethod(t *testing.T) {
	cfg := mustParse(t, "hostd.hcl", authFile(`  method "jwt" {
    role = "waf"
    path = "/run/identity/token.jwt"
  }
`))
	want := AutoAuth{Method: auth.MethodJWT, MountPath: "auth/jwt", Role: "waf", JWTFile: "/run/identity/token.jwt"}
	if cfg.AutoAuth != want {
		t.Fatalf("jwt AutoAuth = %+v, want %+v", cfg.AutoAuth, want)
	}
	cfg = mustParse(t, "hostd.hcl", authFile(`  method "jwt" {
    mount_path = "/auth/gcp-identity/"
    role       = "waf"
    path       = "/run/identity/token.jwt"
  }
`))
	if cfg.AutoAuth.MountPath != "auth/gcp-identity" {
		t.Fatalf("mount_path %q, want auth/gcp-identity", cfg.AutoAuth.MountPath)
	}
}

func TestParseAppRoleWrappedSecretID(t *testing.T) {
	cfg := mustParse(t, "hostd.hcl", authFile(`  method "approle" {
    role_id_file   = "/etc/hostd/role-id"
    secret_id_file = "/run/hostd/secret-id-wrapped"
    secret_id_response_wrapping_path = "/auth/approle/role/waf/secret-id"
    remove_secret_id_file_after_reading = true
  }
`))
	want := AutoAuth{Method: auth.MethodAppRole, MountPath: "auth/approle", RoleIDFile: "/etc/hostd/role-id",
		SecretIDFile: "/run/hostd/secret-id-wrapped", RemoveSecretIDFileAfterReading: true,
		SecretIDResponseWrappingPath: "auth/approle/role/waf/secret-id"}
	if cfg.AutoAuth != want {
		t.Fatalf("approle AutoAuth = %+v, want %+v", cfg.AutoAuth, want)
	}
}

func TestParseAuthProblems(t *testing.T) {
	approle := func(extra string) string {
		return authFile("  method \"approle\" {\n    role_id_file = \"/r\"\n    secret_id_file = \"/s\"\n    " + extra + "\n  }\n")
	}
	cases := []struct {
		name string
		text string
		line int
		want []string
	}{
		{"jwt without role", authFile("  method \"jwt\" {\n    path = \"/run/t.jwt\"\n  }\n"), 3, []string{"Missing role", `method "jwt" block needs role`}},
		{"jwt without path", authFile("  method \"jwt\" {\n    role = \"waf\"\n  }\n"), 3, []string{"Missing path", `method "jwt" block needs path`}},
		{"jwt relative path", authFile("  method \"jwt\" {\n    role = \"waf\"\n    path = \"token.jwt\"\n  }\n"), 5, []string{"Path not absolute", "token.jwt"}},
		{"jwt empty role", authFile("  method \"jwt\" {\n    role = \"\"\n    path = \"/t\"\n  }\n"), 4, []string{"Invalid role"}},
		{"jwt role with a slash", authFile("  method \"jwt\" {\n    role = \"a/b\"\n    path = \"/t\"\n  }\n"), 4, []string{"Invalid role", `"a/b"`}},
		{"jwt bad mount_path", authFile("  method \"jwt\" {\n    mount_path = \"//\"\n    role = \"waf\"\n    path = \"/t\"\n  }\n"), 4, []string{"Invalid mount_path", `"auth/jwt"`}},
		{"jwt with an approle argument", authFile("  method \"jwt\" {\n    role = \"waf\"\n    path = \"/t\"\n    secret_id_file = \"/s\"\n  }\n"), 6, []string{"Unsupported argument", `"secret_id_file"`}},
		{"wrapping path empty", approle(`secret_id_response_wrapping_path = "/"`), 6, []string{"Invalid secret_id_response_wrapping_path", "auth/approle/role/waf/secret-id"}},
		{"wrapping path with /v1/", approle(`secret_id_response_wrapping_path = "/v1/auth/approle/role/waf/secret-id"`), 6, []string{"Invalid secret_id_response_wrapping_path"}},
		{"wrapping path not a string", approle(`secret_id_response_wrapping_path = ["a"]`), 6, []string{"Unsuitable value", "string required"}},
		{"wrapping path on cert", certVault + "auto_auth {\n  method \"cert\" {\n    secret_id_response_wrapping_path = \"x\"\n  }\n}\n", 8, []string{"Unsupported argument", `"secret_id_response_wrapping_path"`}},
		{"unknown method names jwt", authFile("  method \"kubernetes\" {}\n"), 3, []string{"Unknown auth method", "approle, cert, jwt or token_file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("hostd.hcl", []byte(c.text))
			assertOneProblem(t, err, "hostd.hcl", c.line, c.want...)
		})
	}
}

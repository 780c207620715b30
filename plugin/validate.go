package plugin

import (
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"

	"github.com/sigsci-keys/sigsci-keys/plugin/sigsci"
)

// Size limits of role fields; longer values are refused.
const (
	maxRoleNameLen = 128
	maxEmailLen    = 254
	maxTokenLen    = 512
	maxAPIURLLen   = 2048
)

var roleNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func validateRoleName(name string) error {
	if name == "" {
		return fmt.Errorf("role name is empty")
	}
	if len(name) > maxRoleNameLen {
		return fmt.Errorf("role name is longer than %d characters", maxRoleNameLen)
	}
	if !roleNameRe.MatchString(name) {
		return fmt.Errorf("role name %q is invalid: use letters, digits, '_', '.', '-', starting with a letter or digit", name)
	}
	return nil
}

// validateName checks a corp or site name as the API spells it; kind names
// it in the message ("corp", "site name").
func validateName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s is required", kind)
	}
	if !sigsci.ValidName(name) {
		return fmt.Errorf("%s %q is invalid: use 1-100 of a-z, 0-9, '_', '.', '-'", kind, truncate(name, 110))
	}
	return nil
}

func validateCorp(corp string) error { return validateName("corp", corp) }

func validateSite(site string) error { return validateName("site name", site) }

func validateEmail(email string) error {
	if email == "" {
		return fmt.Errorf("email is required")
	}
	if len(email) > maxEmailLen {
		return fmt.Errorf("email is longer than %d characters", maxEmailLen)
	}
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email || addr.Name != "" {
		return fmt.Errorf("email %q is not a plain address like user@example.com", email)
	}
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(email, " \t\r\n") {
		return fmt.Errorf("email %q is not a plain address like user@example.com", email)
	}
	return nil
}

// validateToken checks the token without ever quoting it.
func validateToken(token string) error {
	if token == "" {
		return fmt.Errorf("token is required")
	}
	if len(token) > maxTokenLen {
		return fmt.Errorf("token is longer than %d characters", maxTokenLen)
	}
	for _, c := range token {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("token must be printable ASCII without spaces (value not shown)")
		}
	}
	return nil
}

// normaliseAPIURL checks that u is an absolute https:// URL (http:// only
// for a loopback host) without credentials, query or fragment, and strips a
// trailing slash.
func normaliseAPIURL(raw string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("api_url is empty")
	}
	if len(raw) > maxAPIURLLen {
		return "", fmt.Errorf("api_url is longer than %d characters", maxAPIURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// The parse error quotes the value; keep it out in case it holds a secret.
		return "", fmt.Errorf("api_url is not a valid URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("api_url must be an absolute http:// or https:// URL")
	case u.Host == "":
		return "", fmt.Errorf("api_url has no host")
	case u.Scheme == "http" && !sigsci.LoopbackHost(u.Hostname()):
		return "", fmt.Errorf("api_url must use https://: http:// is accepted only for a loopback host " +
			"(127.0.0.0/8, ::1, localhost), such as a local simulator, because the API token would otherwise cross the network in clear")
	case u.User != nil:
		return "", fmt.Errorf("api_url must not carry credentials")
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("api_url must not have a query or fragment")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// truncate shortens a user-supplied value quoted in an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

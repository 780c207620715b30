package render

// This file keeps secrets out of what render says: template errors are
// scrubbed of data, and consul-template's log lines that show a token are
// dropped.

import (
	"regexp"
	"strings"

	"github.com/sigsci-keys/sigsci-keys/hostd/internal/vaulttoken"
)

// tokenHeader matches the names under which a token travels; a line naming
// one may show the token in a form vaulttoken does not know.
var tokenHeader = regexp.MustCompile(`(?i)x-vault-token|client_token`)

// tokenLike reports whether line shows, or may show, a Vault token.
func tokenLike(line string) bool {
	return vaulttoken.Contains(line) || tokenHeader.MatchString(line)
}

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// redact replaces every quoted string in a template error that does not come
// from the template text itself: such a string can only be data, and data
// may be a secret (consul-template redacts top-level secret values only).
func redact(msg, contents string) string {
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		inner := q[1 : len(q)-1]
		if inner == "" || strings.Contains(contents, inner) {
			return q
		}
		return `"` + vaulttoken.Redacted + `"`
	})
}

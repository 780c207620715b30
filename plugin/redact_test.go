package plugin

import (
	"fmt"
	"strings"
	"testing"
)

// Every fmt verb of a stored type that holds a secret prints its redacted
// form, alone or inside a slice, map or struct.
func TestStoredTypesFormattingHidesSecrets(t *testing.T) {
	k := storedKeys{AccessKey: "a", SecretKey: "very-secret", NonPrimary: []keyRecord{{AccessKey: "b", SecretKey: "also-secret"}}}
	r := roleEntry{Corp: "acme", Email: acmeEmail, Token: "token-secret"}
	holder := struct {
		Keys storedKeys
		Role *roleEntry
	}{k, &r}
	values := []any{k, &k, k.NonPrimary, k.NonPrimary[0], &k.NonPrimary[0], r, &r, map[string]roleEntry{"x": r}, holder}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10v", "%T %v"} {
		for _, v := range values {
			s := fmt.Sprintf(verb, v)
			if containsAny(s, "very-secret", "also-secret", "token-secret") {
				t.Errorf("%s of %T shows a secret: %s", verb, v, s)
			}
		}
	}
	for _, v := range values[:7] {
		if s := fmt.Sprintf("%v", v); !strings.Contains(s, "<redacted>") {
			t.Errorf("%%v of %T does not say what it left out: %s", v, s)
		}
	}
}

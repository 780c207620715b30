package plugin

import (
	"fmt"
	"strings"
	"testing"
)

// Every fmt verb of a stored type that holds a secret prints its redacted
// form, alone or inside a slice, map or struct.
func TestStoredTypesFormattingHidesSecrets(t *testing.T) {
	k := storedKeys{AccessKey: "ak-primary", SecretKey: "very-secret", NonPrimary: []keyRecord{{AccessKey: "ak-old", SecretKey: "also-secret"}}}
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
	// What is not secret still shows, and the mark says what was left out.
	for i, id := range []string{"ak-primary", "ak-primary", "ak-old", "ak-old", "ak-old", "acme", "acme"} {
		if s := fmt.Sprintf("%v", values[i]); !strings.Contains(s, "<redacted>") || !strings.Contains(s, id) {
			t.Errorf("%%v of %T = %s, want %s and the redaction mark", values[i], s, id)
		}
	}
}

// fmt prints a value in an unexported field by reflection, without its
// Format: the backend and the caches inside it, formatted by mistake, must
// still not show the role's token or a stored secret.
func TestFormattedBackendShowsNoSecret(t *testing.T) {
	e := newStoredSite(t)
	e.b.clientsMu.Lock()
	cached := e.b.clients["vault-user"]
	e.b.clientsMu.Unlock()
	if cached.api == nil {
		t.Fatal("no client cached after a copy")
	}
	if _, ok := e.b.memo.role("vault-user"); !ok {
		t.Fatal("no role remembered after a copy")
	}
	secret := e.stored("vault-user", "www").SecretKey
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d"} {
		for _, v := range []any{e.b, e.b.memo, cached} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, acmeToken) || strings.Contains(out, secret) {
				t.Errorf("%s of %T shows a secret", verb, v)
			}
		}
	}
}

package sigsci

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestKeySetFormatNeverPrintsSecret(t *testing.T) {
	const secret = "s3cr3t-VALUE-that-must-not-leak"
	k := KeySet{AccessKey: "ak-1", SecretKey: secret, Primary: true, Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	holder := struct {
		Name string
		Keys KeySet
		Ptr  *KeySet
		All  []KeySet
	}{"x", k, &k, []KeySet{k, k}}
	values := []any{k, &k, []KeySet{k}, holder, map[string]KeySet{"a": k}}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10v", "%T %v"}
	for _, v := range values {
		for _, verb := range verbs {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, secret) {
				t.Errorf("fmt %s of %T printed the secret: %s", verb, v, out)
			}
			if verb == "%v" && !strings.Contains(out, "ak-1") {
				t.Errorf("fmt %s of %T lost the access key: %s", verb, v, out)
			}
		}
	}
	if got := k.String(); !strings.Contains(got, redactedMark) {
		t.Errorf("String() = %q, want the redaction mark", got)
	}
	if got := fmt.Sprintf("%#v", k); !strings.HasPrefix(got, "sigsci.KeySet{") || !strings.Contains(got, `"ak-1"`) {
		t.Errorf("%%#v = %q, want Go syntax with the access key", got)
	}
}

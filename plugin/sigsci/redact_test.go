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

// A Config or Client formatted by mistake into a log line or an error
// shows where it talks to and as whom, never the API token.
func TestConfigAndClientFormatNeverPrintTheToken(t *testing.T) {
	const token = "tok-that-must-not-leak"
	cfg := Config{BaseURL: "https://api.example.test", Email: "ops@example.test", Token: token}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	values := []any{cfg, &cfg, c, *c, []*Client{c}, map[string]Config{"a": cfg}}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for _, v := range values {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, token) {
				t.Errorf("fmt %s of %T printed the token: %s", verb, v, out)
			}
		}
	}
	for _, v := range values[:4] {
		if out := fmt.Sprintf("%v", v); !strings.Contains(out, "ops@example.test") {
			t.Errorf("%%v of %T lost the email: %s", v, out)
		}
	}
}

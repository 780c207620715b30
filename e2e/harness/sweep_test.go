package harness

import (
	"strings"
	"testing"
)

func TestSweepFindsKeptSecretsAndTokenShapes(t *testing.T) {
	s := &sweep{secrets: map[string]string{"secret-key-0123456789": "a secret key"}}
	s.outputs = []keptOutput{
		{"a clean log", "level=INFO msg=ready accessKey=AK123"},
		{"a leaky status", `{"error":"bad pair secret-key-0123456789"}`},
		{"a leaky log", "token=hvs.CAESIJlWh0aVk5DkZ3s1Vd6p8qXk in a header"},
	}
	var out strings.Builder
	if !s.report(&out) {
		t.Fatalf("the sweep found nothing:\n%s", out.String())
	}
	report := out.String()
	for _, want := range []string{"a leaky status contains a secret key", "a leaky log contains 1 Vault token(s)"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "a clean log") || strings.Contains(report, "secret-key-0123456789") || strings.Contains(report, "hvs.CAES") {
		t.Errorf("the report names a clean output or prints a secret:\n%s", report)
	}
}

func TestSweepOfCleanOutputsPasses(t *testing.T) {
	s := &sweep{secrets: map[string]string{"secret-key-0123456789": "a secret key"}}
	s.outputs = []keptOutput{{"a log", "accessor hmac-sha256:abc, role waf-www, hvs. alone"}}
	var out strings.Builder
	if s.report(&out) {
		t.Fatalf("the sweep found something in clean output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "1 outputs") {
		t.Errorf("the summary does not say what was searched: %s", out.String())
	}
}

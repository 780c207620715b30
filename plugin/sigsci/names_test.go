package sigsci

import (
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	good := []string{"a", "www", "my-site_2.prod", strings.Repeat("x", 100), "0"}
	bad := []string{"", ".", "..", "WWW", "a b", "a/b", "a%2f", "é", strings.Repeat("x", 101), "a\n"}
	for _, s := range good {
		if !ValidName(s) {
			t.Errorf("ValidName(%q) = false, want true", s)
		}
	}
	for _, s := range bad {
		if ValidName(s) {
			t.Errorf("ValidName(%q) = true, want false", s)
		}
	}
}

func TestKeySetPathEscapesAccessKey(t *testing.T) {
	p, err := keySetPath("corp", "site", "a/b?c#d e")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/corps/corp/sites/site/agentKeys/a%2Fb%3Fc%23d%20e"; p != want {
		t.Fatalf("path = %q, want %q", p, want)
	}
	for _, k := range []string{"", ".", "..", "a\x00b", strings.Repeat("k", 201)} {
		if _, err := keySetPath("corp", "site", k); err == nil {
			t.Errorf("keySetPath accepted access key %q", k)
		}
	}
}
